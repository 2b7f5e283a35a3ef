"""The shared SQL vocabulary: views every connection has (snapshot, live, shell).

The controls and analysts ask the same questions -- which resources could not be read,
which key encrypts each model, what serves it -- so the answers are written once, here:

- ``bedrock_listing_error``: each table, account and region whose listing failed;
- ``bedrock_resource_error``: each resource whose details could not be read;
- ``bedrock_model``: one row per model of any kind (customization, copy, created, imported);
- ``bedrock_model_encryption``: each model with its key resolved in every form, the key's
  facts, whether the model could be read, and what serves it.

They are TEMP views made on each connection (:func:`install_views`), so a snapshot written
by any version and a live connection get the current definitions; collect also writes them
into the snapshot file (:func:`write_views`) for tools that open the file themselves
(``sqlite3``, Datasette): a TEMP view shadows the file's own of the same name.

A snapshot written before a table existed gets an empty stand-in for it, and each of its
accounts and regions a ``bedrock_listing_error`` row saying the table was not collected:
controls on that table answer ``error`` (collect again), never a clean pass.
"""

from __future__ import annotations

import apsw
import apsw.ext

from .providers import TABLES
from .providers.base import INTEGER, TEXT, Column
from .snapshot import ERRORS_TABLE, META_TABLES, RUNS_TABLE, _create_sql

# Tag listings cost tags, not the details a verdict needs.
_TAG_OPERATIONS = "('ListTagsForResource')"


def _arn_field(expression: str, index: int) -> str:
    """SQL for field ``index`` (0-based) of the ARN ``expression`` (4 = the account)."""
    return f"""json_extract('["' || replace({expression}, ':', '","') || '"]', '$[{index}]')"""


LISTING_ERROR_SQL = f"""
SELECT table_name, account_id, region,
       min(operation || ' failed with ' || error_code) AS cause,
       min(operation || ' failed with ' || error_code || ': ' || message) AS detail
FROM {ERRORS_TABLE}
WHERE resource IS NULL
GROUP BY table_name, account_id, region
"""

# One row per account and region whose custom or imported models could not be listed: the
# rules that judge both kinds of model give one error row there, naming the listings.
MODEL_LISTING_ERROR_SQL = """
SELECT account_id, region, group_concat(kind, ' and ') AS kinds, group_concat(detail, '; ') AS detail
FROM (SELECT account_id, region, detail,
             CASE table_name WHEN 'aws_bedrock_imported_model' THEN 'imported' ELSE 'custom' END AS kind
      FROM bedrock_listing_error
      WHERE table_name IN ('aws_bedrock_custom_model', 'aws_bedrock_imported_model')
      ORDER BY account_id, region, table_name)
GROUP BY account_id, region
"""

RESOURCE_ERROR_SQL = f"""
SELECT table_name, account_id, region, resource,
       min(operation || ' failed with ' || error_code) AS cause
FROM {ERRORS_TABLE}
WHERE resource IS NOT NULL AND operation NOT IN {_TAG_OPERATIONS}
GROUP BY table_name, account_id, region, resource
"""

MODEL_SQL = """
SELECT m.arn, m.model_name,
       CASE WHEN EXISTS (SELECT 1 FROM aws_bedrock_model_copy_job c WHERE c.target_model_arn = m.arn) THEN 'copy'
            WHEN m.customization_type = 'IMPORTED' THEN 'created'
            ELSE 'customization' END AS kind,
       'aws_bedrock_custom_model' AS table_name,
       m.account_id, m.region, m.partition,
       (m.owner_account_id IS NULL OR m.owner_account_id = m.account_id) AS owned_by_account,
       m.model_kms_key_arn AS key_reference,
       m.creation_time
FROM aws_bedrock_custom_model m
UNION ALL
SELECT i.arn, i.model_name, 'imported', 'aws_bedrock_imported_model',
       i.account_id, i.region, i.partition, 1, i.model_kms_key_arn, i.creation_time
FROM aws_bedrock_imported_model i
"""

# The key reference resolved to a key ARN: an ARN as is; an alias (ARN, or name in the
# model's account and region) through aws_kms_alias; a bare key ID in the model's account
# and region. The ARN is built from what names the key, so it is known even when the key
# itself could not be described.
_KEY_ARN_OF = "'arn:' || {p}.partition || ':kms:' || {p}.region || ':' || {p}.account_id || ':key/' || {id}"

MODEL_ENCRYPTION_SQL = f"""
SELECT r.arn, r.model_name, r.kind, r.table_name, r.account_id, r.region, r.owned_by_account,
       r.key_reference, r.key_reference_form,
       r.key_arn,
       coalesce(k.id, substr(r.key_arn, instr(r.key_arn, ':key/') + 5)) AS key_id,
       r.key_alias_name,
       'arn:' || r.partition || ':kms:' || r.key_region || ':' || r.key_account_id || ':' || r.key_alias_name
         AS key_alias_arn,
       r.key_account_id,
       r.key_region,
       k.title AS key_title,
       k.arn IS NOT NULL AS key_found,
       k.key_manager, k.key_state, k.key_rotation_enabled, k.origin AS key_origin, k.key_spec,
       k.deletion_date AS key_deletion_date, k.policy AS key_policy,
       de.cause AS details_error,
       le.detail AS listing_error,
       coalesce(ke.cause, kle.cause) AS key_error,
       (SELECT min(x.operation || ' failed with ' || x.error_code) FROM {ERRORS_TABLE} x
        WHERE x.resource = r.key_arn AND x.operation = 'GetKeyRotationStatus') AS key_rotation_error,
       (SELECT min(x.operation || ' failed with ' || x.error_code) FROM {ERRORS_TABLE} x
        WHERE x.resource = r.key_arn AND x.operation = 'GetKeyPolicy') AS key_policy_error,
       kle.cause AS key_listing_error,
       CASE WHEN r.key_reference_form IN ('alias_arn', 'alias_name') THEN ale.cause END AS alias_listing_error,
       r.served_by,
       se.cause AS serving_error,
       -- Unknown, never 0, when what could serve the model was not listed in its unit.
       CASE WHEN json_array_length(r.served_by) > 0 THEN 1 WHEN se.cause IS NULL THEN 0 END AS in_use
FROM (
  SELECT m.*,
         CASE WHEN m.key_reference IS NULL THEN NULL
              WHEN m.key_reference LIKE 'arn:%:kms:%:key/%' THEN 'key_arn'
              WHEN m.key_reference LIKE 'arn:%:kms:%:alias/%' THEN 'alias_arn'
              WHEN m.key_reference LIKE 'alias/%' THEN 'alias_name'
              ELSE 'key_id' END AS key_reference_form,
         CASE WHEN m.key_reference IS NULL THEN NULL
              WHEN m.key_reference LIKE 'arn:%:kms:%:key/%' THEN m.key_reference
              WHEN m.key_reference LIKE 'arn:%:kms:%:alias/%' THEN {_KEY_ARN_OF.format(p='aa', id='aa.target_key_id')}
              WHEN m.key_reference LIKE 'alias/%' THEN {_KEY_ARN_OF.format(p='an', id='an.target_key_id')}
              ELSE {_KEY_ARN_OF.format(p='m', id='m.key_reference')} END AS key_arn,
         CASE WHEN m.key_reference LIKE 'arn:%' THEN {_arn_field('m.key_reference', 4)}
              WHEN m.key_reference IS NOT NULL THEN m.account_id END AS key_account_id,
         CASE WHEN m.key_reference LIKE 'arn:%' THEN {_arn_field('m.key_reference', 3)}
              WHEN m.key_reference IS NOT NULL THEN m.region END AS key_region,
         coalesce(aa.alias_name, an.alias_name,
                  CASE WHEN m.key_reference LIKE 'arn:%:kms:%:alias/%'
                         THEN substr(m.key_reference, instr(m.key_reference, ':alias/') + 1)
                       WHEN m.key_reference LIKE 'alias/%' THEN m.key_reference END,
                  (SELECT min(x.alias_name) FROM aws_kms_alias x  -- the key's first alias
                   WHERE m.key_reference LIKE 'arn:%:kms:%:key/%'
                     AND x.target_key_id = substr(m.key_reference, instr(m.key_reference, ':key/') + 5)
                     AND x.account_id = {_arn_field('m.key_reference', 4)} AND x.region = {_arn_field('m.key_reference', 3)}),
                  (SELECT min(x.alias_name) FROM aws_kms_alias x
                   WHERE m.key_reference NOT LIKE 'arn:%' AND m.key_reference NOT LIKE 'alias/%'
                     AND x.target_key_id = m.key_reference AND x.account_id = m.account_id AND x.region = m.region)
         ) AS key_alias_name,
         (SELECT json_group_array(s.arn) FROM (
            SELECT t.arn FROM aws_bedrock_provisioned_model_throughput t WHERE t.model_arn = m.arn
            UNION SELECT t.arn FROM aws_bedrock_provisioned_model_throughput t WHERE t.desired_model_arn = m.arn
            UNION SELECT d.arn FROM aws_bedrock_custom_model_deployment d WHERE d.model_arn = m.arn
            ORDER BY 1) s) AS served_by
  FROM bedrock_model m
  LEFT JOIN aws_kms_alias aa ON aa.arn = m.key_reference AND m.key_reference LIKE 'arn:%:kms:%:alias/%'
  LEFT JOIN aws_kms_alias an ON an.alias_name = m.key_reference AND an.account_id = m.account_id
        AND an.region = m.region AND m.key_reference LIKE 'alias/%'
) r
LEFT JOIN aws_kms_key k ON k.arn = r.key_arn
LEFT JOIN bedrock_resource_error de ON de.table_name = r.table_name AND de.resource = r.arn
LEFT JOIN (SELECT account_id, region, min(cause) AS cause FROM bedrock_listing_error
           WHERE table_name IN ('aws_bedrock_provisioned_model_throughput', 'aws_bedrock_custom_model_deployment')
           GROUP BY account_id, region) se ON se.account_id = r.account_id AND se.region = r.region
LEFT JOIN bedrock_listing_error le ON le.table_name = r.table_name AND le.account_id = r.account_id AND le.region = r.region
LEFT JOIN bedrock_resource_error ke ON ke.table_name = 'aws_kms_key' AND ke.resource = r.key_arn
LEFT JOIN bedrock_listing_error kle ON kle.table_name = 'aws_kms_key'
      AND kle.account_id = r.key_account_id AND kle.region = r.key_region
LEFT JOIN bedrock_listing_error ale ON ale.table_name = 'aws_kms_alias'
      AND ale.account_id = r.key_account_id AND ale.region = r.key_region
"""


def _columns(*specs: tuple[str, str, str]) -> list[Column]:
    return [Column(name, kind, description) for name, kind, description in specs]


_MODEL_COLUMNS = (
    ("arn", TEXT, "The ARN of the model."),
    ("model_name", TEXT, "The name of the model."),
    ("kind", TEXT, "customization (trained by a customization job), copy (the target of a copy job), "
     "created (made by CreateCustomModel) or imported (Custom Model Import)."),
    ("table_name", TEXT, "The table the model comes from (aws_bedrock_custom_model or aws_bedrock_imported_model)."),
    ("account_id", TEXT, "The account the model was collected in."),
    ("region", TEXT, "The region of the model."),
)

# name -> (description, columns, SQL), in the order they must be created.
VIEWS: dict[str, tuple[str, list[Column], str]] = {
    "bedrock_listing_error": (
        "Each table, account and region whose listing failed: its resources there are unknown.",
        _columns(
            ("table_name", TEXT, "The table whose listing failed."),
            ("account_id", TEXT, "The account whose listing failed."),
            ("region", TEXT, "The region whose listing failed."),
            ("cause", TEXT, "The first failure, e.g. ListCustomModels failed with AccessDeniedException."),
            ("detail", TEXT, "The same with the error message."),
        ),
        LISTING_ERROR_SQL,
    ),
    "bedrock_model_listing_error": (
        "Each account and region whose custom or imported models could not be listed.",
        _columns(
            ("account_id", TEXT, "The account whose listing failed."),
            ("region", TEXT, "The region whose listing failed."),
            ("kinds", TEXT, "Which listings failed: custom, imported, or custom and imported."),
            ("detail", TEXT, "Each failure with its error message (custom models' first)."),
        ),
        MODEL_LISTING_ERROR_SQL,
    ),
    "bedrock_resource_error": (
        "Each resource whose details could not be read (lost tags do not count).",
        _columns(
            ("table_name", TEXT, "The table of the resource."),
            ("account_id", TEXT, "The account of the resource."),
            ("region", TEXT, "The region of the resource."),
            ("resource", TEXT, "The ARN of the resource."),
            ("cause", TEXT, "The first failure, e.g. GetCustomModel failed with ThrottlingException."),
        ),
        RESOURCE_ERROR_SQL,
    ),
    "bedrock_model": (
        "One row per model of any kind: custom models (trained, copied, created) and imported models.",
        _columns(
            *_MODEL_COLUMNS,
            ("partition", TEXT, "The AWS partition (aws, aws-cn, aws-us-gov)."),
            ("owned_by_account", INTEGER, "1 when the scanned account owns the model (0: shared with it)."),
            ("key_reference", TEXT, "The model's KMS key as Bedrock reports it (NULL = Bedrock-owned key)."),
            ("creation_time", TEXT, "When the model was created (ISO-8601 UTC)."),
        ),
        MODEL_SQL,
    ),
    "bedrock_model_encryption": (
        "Each model with its KMS key resolved, the key's facts, whether it could be read, and what serves it.",
        _columns(
            *_MODEL_COLUMNS,
            ("owned_by_account", INTEGER, "1 when the scanned account owns the model (0: shared with it)."),
            ("key_reference", TEXT, "The model's KMS key as Bedrock reports it (NULL = Bedrock-owned key)."),
            ("key_reference_form", TEXT, "How the reference names the key: key_arn, alias_arn, alias_name or key_id."),
            ("key_arn", TEXT, "The key's ARN, resolved through aws_kms_alias for an alias."),
            ("key_id", TEXT, "The key's ID."),
            ("key_alias_name", TEXT, "The alias the reference names, else the key's first alias (alias/...)."),
            ("key_alias_arn", TEXT, "The ARN of that alias."),
            ("key_account_id", TEXT, "The account the key lives in."),
            ("key_region", TEXT, "The region the key lives in."),
            ("key_title", TEXT, "The key's title in aws_kms_key (its first alias, else its ID)."),
            ("key_found", INTEGER, "1 when the key is in aws_kms_key."),
            ("key_manager", TEXT, "CUSTOMER or AWS (NULL when the key is not in aws_kms_key)."),
            ("key_state", TEXT, "Enabled, Disabled, PendingDeletion, PendingImport, Unavailable..."),
            ("key_rotation_enabled", INTEGER, "1 when automatic rotation is on."),
            ("key_origin", TEXT, "AWS_KMS, EXTERNAL, AWS_CLOUDHSM or EXTERNAL_KEY_STORE."),
            ("key_spec", TEXT, "SYMMETRIC_DEFAULT, RSA_2048, HMAC_256..."),
            ("key_deletion_date", TEXT, "When a key pending deletion will be deleted (ISO-8601 UTC)."),
            ("key_policy", TEXT, "JSON: the key policy."),
            ("details_error", TEXT, "Why the model's details could not be read (NULL: they were)."),
            ("listing_error", TEXT, "Why the listing of the model's table failed in its account/region, if it did."),
            ("key_error", TEXT, "Why the key could not be read: its own failure, else its account/region's listing."),
            ("key_rotation_error", TEXT, "Why the key's rotation status could not be read, if so "
             "(key_rotation_enabled then reads 0)."),
            ("key_policy_error", TEXT, "Why the key's policy could not be read or understood, if so."),
            ("key_listing_error", TEXT, "Why the keys of the key's account/region could not be listed, if so."),
            ("alias_listing_error", TEXT, "For a key named by an alias: why the aliases could not be listed, if so."),
            ("served_by", TEXT, "JSON array of the provisioned throughputs (model_arn or desired_model_arn) "
             "and custom model deployments (model_arn) that serve the model."),
            ("serving_error", TEXT, "Why the provisioned throughputs or deployments of the model's account/region "
             "could not be listed, if so (served_by may then be incomplete)."),
            ("in_use", INTEGER, "1 when served_by is not empty; NULL when it is empty but serving_error says "
             "the list is unknown; else 0."),
        ),
        MODEL_ENCRYPTION_SQL,
    ),
}


def view_catalog() -> dict[str, tuple[str, list[Column]]]:
    """Every view: name -> (description, columns), for `schema` and the docs."""
    return {name: (description, columns) for name, (description, columns, _sql) in VIEWS.items()}


def install_views(connection: apsw.Connection) -> None:
    """Create the views as TEMP views on ``connection`` (a snapshot's, or a live one).

    Tables the connection lacks (a snapshot older than the table; the bookkeeping tables
    on a live connection) get empty TEMP stand-ins first. The connection's read-only
    authorizer is lifted for this alone: it refuses any CREATE.
    """
    authorizer = connection.authorizer
    connection.authorizer = None
    try:
        uncollected = []
        for name, create in _table_schemas().items():
            if not _exists(connection, name):
                connection.execute(create.replace("CREATE TABLE ", "CREATE TEMP TABLE ", 1))
                if name in TABLES and _exists(connection, RUNS_TABLE):
                    uncollected.append(name)
        # A snapshot this version collected holds the same views (write_views): keep those,
        # rather than shadow each with a TEMP twin that the shell's .tables would list again.
        in_file = {} if uncollected else dict(
            connection.execute("SELECT name, sql FROM main.sqlite_schema WHERE type = 'view'").fetchall()
        )
        for name, (_description, _columns, sql) in VIEWS.items():
            if name == "bedrock_listing_error" and uncollected:
                sql = _listing_error_sql(uncollected)
            if (in_file.get(name) or "").rstrip() == f"CREATE VIEW {name} AS {sql}".rstrip():  # SQLite drops trailing space
                continue
            connection.execute(f"CREATE TEMP VIEW {name} AS {sql}")
    finally:
        connection.authorizer = authorizer


def write_views(connection: apsw.Connection, schema: str) -> None:
    """Write the views into database ``schema`` (collect's snapshot), for other SQLite tools."""
    for name, (_description, _columns, sql) in VIEWS.items():
        connection.execute(f"CREATE VIEW {schema}.{name} AS {sql}")


def _table_schemas() -> dict[str, str]:
    schemas = {name: table.create_sql() for name, table in TABLES.items()}
    schemas.update({name: _create_sql(name, columns) for name, (_, columns) in META_TABLES.items()})
    return schemas


def _exists(connection: apsw.Connection, name: str) -> bool:
    # Prepared, never run: on a live connection a run would call AWS.
    try:
        apsw.ext.query_info(connection, f'SELECT * FROM "{name}"')
    except apsw.SQLError:
        return False
    return True


def _listing_error_sql(uncollected: list[str]) -> str:
    """LISTING_ERROR_SQL, plus a failed listing of each table the snapshot never collected,
    in every account and region of its run."""
    missing = " UNION ALL ".join(f"SELECT '{name}' AS table_name" for name in uncollected)
    return f"""
SELECT table_name, account_id, region,
       min(operation || ' failed with ' || error_code) AS cause,
       min(operation || ' failed with ' || error_code || ': ' || message) AS detail
FROM (
  SELECT table_name, account_id, region, operation, error_code, message FROM {ERRORS_TABLE} WHERE resource IS NULL
  UNION ALL
  SELECT t.table_name, a.value, r.value, 'collect', 'NotCollected',
         'this snapshot was written by bedrock-sql ' || coalesce(run.tool_version, '(unknown)')
           || ', which did not collect ' || t.table_name || ': run bedrock-sql collect again'
  FROM ({missing}) t, {RUNS_TABLE} run, json_each(run.accounts) a, json_each(run.regions) r
)
GROUP BY table_name, account_id, region
"""
