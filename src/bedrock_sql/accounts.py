"""Which accounts and regions to scan.

:func:`resolve_scope` is the single entry point that turns the AWS options (profiles,
roles, the AWS Organization, an accounts file; regions) into the accounts and units a
command scans. The calls themselves go through :mod:`bedrock_sql.aws`.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import boto3
import botocore.credentials
import botocore.exceptions

from .accounts_file import ACCOUNT_ID, read_accounts_file, role_arn_account
from .aws import (
    Account,
    ApiError,
    AwsOptions,
    ClientFactory,
    Unit,
    UnitApi,
    all_region_names,
    known_regions,
    offered,
)
from .errors import UserError, aws_failure_message
from .shard import Shard, shard_note



# --- resolving accounts and regions -----------------------------------------------------

# An IAM role name, optionally with a path: "BedrockSqlAudit", "audit/BedrockSqlAudit".
ROLE_NAME = re.compile(r"^[\w+=,.@-]+(/[\w+=,.@-]+)*$", re.ASCII)
SESSION_NAME_MAX = 64


def role_session_name() -> str:
    """``bedrock-sql-<user>`` (or ``-<host>``): how the audit's calls read in CloudTrail.

    AssumeRole allows 2-64 characters of ``[A-Za-z0-9_+=,.@-]``; anything else becomes '-'.
    """
    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        who = ""
    who = who or socket.gethostname().split(".")[0]
    who = re.sub(r"[^A-Za-z0-9_+=,.@-]", "-", who).strip("-")
    return (f"bedrock-sql-{who}" if who else "bedrock-sql")[:SESSION_NAME_MAX]


@dataclass(frozen=True)
class FailedAccount:
    """An account that was to be audited but could not be reached (its role not assumable).

    The collector records it in ``bedrock_sql_errors`` once per table and region, with
    ``resource`` NULL, exactly as a failed listing: every control then answers ``error``
    for that account and region, never a silent pass.
    """

    account_id: str
    label: str  # the role ARN (or profile) that failed
    operation: str  # AssumeRole, GetCallerIdentity
    error_code: str
    message: str
    regions: tuple[str, ...] = ()

    def error(self) -> "ApiError":
        return ApiError(self.operation, self.error_code, f"{self.label}: {self.message}")

    def __str__(self) -> str:
        return f"{self.account_id} ({self.label}): {self.operation}: {self.error_code}: {self.message}"


@dataclass
class Scope:
    """What one run scans: the accounts, and the units (account x region) to call."""

    accounts: list[Account]
    units: list[Unit]
    factory: ClientFactory
    failed_accounts: list[FailedAccount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth telling the user, not failures

    @property
    def regions(self) -> list[str]:
        return sorted({u.region for u in self.units})

    def failed_units(self) -> Iterator[tuple[Unit, ApiError]]:
        """(unit, error) for every region of every account that could not be reached."""
        for failed in self.failed_accounts:
            account = Account(session=None, label=failed.label, account_id=failed.account_id)  # type: ignore[arg-type]
            for region in failed.regions:
                yield Unit(account=account, account_id=failed.account_id, region=region), failed.error()


def record_failed_accounts(scope: Scope, errors, tables) -> None:
    """Record the unreachable accounts in ``errors`` (an ErrorLog): one row per table and region.

    A table whose service is not offered in a region gets no row there: it would not have
    been scanned either.
    """
    for unit, exc in scope.failed_units():
        for name, table in tables.items():
            if offered(table.service, unit.region):
                errors.add(unit, name, exc)


def sdk_region() -> str | None:
    """``AWS_REGION`` if set: the region every session is given, as the AWS SDKs do.

    The SDKs (and the AWS CLI v2) take ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the
    profile's ``region``; botocore 1.44 reads only the last two. A session created with
    ``region_name=sdk_region()`` falls back to botocore's order when AWS_REGION is unset,
    so ``session.region_name`` is the SDKs' answer everywhere it is read.
    """
    return os.environ.get("AWS_REGION") or None


def _profile_session(profile: str, where: str | None = None, factory: ClientFactory | None = None) -> boto3.Session:
    prefix = f"{where}: " if where else ""
    try:
        session = (
            factory.new_session(profile=profile, region=sdk_region())
            if factory
            else boto3.Session(profile_name=profile, region_name=sdk_region())
        )
    except botocore.exceptions.ProfileNotFound:
        session = None
    if session is None or profile not in session.available_profiles:
        raise UserError(f"{prefix}AWS profile {profile!r} not found in your AWS config")
    return session


def _base_sessions(opts: AwsOptions) -> list[tuple[boto3.Session, str]]:
    if not opts.profiles:
        return [(boto3.Session(region_name=sdk_region()), os.environ.get("AWS_PROFILE") or "default")]
    return [(_profile_session(profile), profile) for profile in opts.profiles]


def _require_credentials(session: boto3.Session, label: str) -> None:
    try:
        creds = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise UserError(f"cannot load AWS credentials for {label}: {exc}") from None
    if creds is None:
        raise UserError(
            "no AWS credentials found: run `aws configure` or `aws sso login`, "
            "or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )


def _identify(factory: ClientFactory, session: boto3.Session, label: str, region: str) -> Account:
    """The account STS says ``session``'s credentials belong to (raises ApiError)."""
    probe = Account(session=session, label=label)
    response = UnitApi(factory, Unit(account=probe, account_id="", region=region)).call("sts", "get_caller_identity")
    arn = response.get("Arn") or ""
    partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
    return Account(session=session, label=label, account_id=response["Account"], partition=partition)


def _assume(factory: ClientFactory, base: Account, role_arn: str, external_id: str | None, region: str) -> Account:
    """Assume ``role_arn`` with ``base``'s credentials (raises ApiError).

    The credentials refresh themselves (botocore's RefreshableCredentials, re-assuming the
    role through an AssumeRoleCredentialFetcher 15 minutes before they expire), so a
    collect longer than the role's session duration does not fail halfway. The account id
    is the one STS reports for the assumed role (``AssumedRoleUser.Arn``).
    """
    params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": role_session_name()}
    if external_id:
        params["ExternalId"] = external_id
    api = UnitApi(factory, Unit(account=base, account_id=base.account_id, region=region))
    response = api.call("sts", "assume_role", **params)
    creds = response["Credentials"]
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        # The base account's cached STS client (it resolves, and refreshes, its own credentials).
        client_creator=lambda service_name, **_: factory.client(base, region, service_name),
        source_credentials=base.session.get_credentials(),
        role_arn=role_arn,
        extra_args={k: v for k, v in params.items() if k != "RoleArn"},
    )
    credentials = botocore.credentials.RefreshableCredentials(
        access_key=creds["AccessKeyId"],
        secret_key=creds["SecretAccessKey"],
        token=creds["SessionToken"],
        expiry_time=creds["Expiration"],  # a datetime: botocore parses the response
        refresh_using=fetcher.fetch_credentials,
        method="assume-role",
    )
    # The base profile's config (CA bundle, proxies...), the role's credentials: no session
    # of its own (the clients are shared, each call signed as its account; see ClientFactory).
    arn = response.get("AssumedRoleUser", {}).get("Arn") or role_arn
    parts = arn.split(":")
    return Account(session=base.session, label=role_arn, account_id=parts[4], partition=parts[1],
                   credentials=credentials)


def _enabled_regions(factory: ClientFactory, account: Account, region: str) -> set[str] | None:
    """Regions enabled in the account (opt-in regions may be off); None if we cannot tell."""
    try:
        ec2 = factory.client(account, region, "ec2")
        return {r["RegionName"] for r in ec2.describe_regions(AllRegions=False)["Regions"]}
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return None


@dataclass
class _Target:
    """One way to reach an account: credentials to scan as they are, or a role to assume."""

    label: str
    sts_region: str  # where STS (and, with --all-regions, EC2 DescribeRegions) is called
    regions: tuple[str, ...]  # the regions to scan; () with --all-regions (found per account)
    session: boto3.Session | None = None  # scan these credentials...
    base: Account | None = None  # ...or assume role_arn with these
    role_arn: str | None = None
    external_id: str | None = None
    expected_account: str | None = None  # accounts file: the account the entry must reach
    where: str | None = None  # accounts file: "accounts.csv line 3"
    record_failure: bool = False  # unreachable: recorded as a failed account, not fatal

    @property
    def known_account(self) -> str | None:
        return self.expected_account or (role_arn_account(self.role_arn) if self.role_arn else None)


class _Resolver:
    """Builds the targets the options ask for, then reaches them (concurrently)."""

    def __init__(self, opts: AwsOptions, factory: ClientFactory):
        self.opts = opts
        self.factory = factory
        self.notes: list[str] = []
        self._bedrock_regions: list[str] | None = None
        self._sessions: dict[str, boto3.Session] = {}

    # -- building targets ----------------------------------------------------------------

    def _regions_for(self, region: str | None, where: str | None = None) -> tuple[str, ...]:
        """The global region list (--region, or the credentials' own region)."""
        if self.opts.regions:
            return tuple(dict.fromkeys(self.opts.regions))
        if self.opts.all_regions:
            return ()
        if not region:
            prefix = f"{where}: " if where else ""
            raise UserError(f"{prefix}no AWS region configured: pass --region NAME or --all-regions, or set AWS_REGION")
        return (region,)

    def _sts_region(self, session: boto3.Session, regions: tuple[str, ...] = ()) -> str:
        return (regions or self.opts.regions or (None,))[0] or session.region_name or "us-east-1"

    def _base(self, session: boto3.Session, label: str) -> Account:
        _require_credentials(session, label)
        return Account(session=session, label=label)

    def targets(self) -> list[_Target]:
        opts = self.opts
        if opts.accounts_file:
            return self._file_targets()
        targets: list[_Target] = []
        for session, label in _base_sessions(opts):
            if not (opts.role_arns or opts.org_role):
                _require_credentials(session, label)
                targets.append(
                    _Target(label, self._sts_region(session), self._regions_for(session.region_name), session=session)
                )
                continue
            # The base credentials only assume the roles; they are not scanned themselves.
            base = self._base(session, label)
            sts_region = self._sts_region(session)
            regions = self._regions_for(session.region_name)
            for role_arn in opts.role_arns:
                targets.append(
                    _Target(role_arn, sts_region, regions, base=base, role_arn=role_arn, external_id=opts.external_id)
                )
            if opts.org_role:
                targets.extend(self._org_targets(base, sts_region, regions))
        return targets

    def _org_targets(self, base: Account, sts_region: str, regions: tuple[str, ...]) -> list[_Target]:
        opts = self.opts
        api = UnitApi(self.factory, Unit(account=base, account_id="", region=sts_region))
        try:
            listed = list(api.paginate("organizations", "list_accounts", "Accounts"))
        except ApiError as exc:
            raise UserError(
                f"--org-role: cannot list the accounts of the AWS Organization with the {base.label} credentials "
                f"({exc.code}: {exc.message}); run from the management account or a delegated administrator"
            ) from None
        targets, inactive = [], []
        for item in listed:
            account_id = item["Id"]
            # Newer APIs answer State (PENDING_ACTIVATION, ACTIVE, SUSPENDED, PENDING_CLOSURE,
            # CLOSED); Status (ACTIVE, SUSPENDED, PENDING_CLOSURE) is deprecated.
            state = item.get("State") or item.get("Status")
            if state != "ACTIVE":
                inactive.append(f"{account_id} ({state})")
                continue
            if account_id in opts.org_exclude:
                continue
            arn = item.get("Arn") or ""
            partition = arn.split(":")[1] if arn.startswith("arn:") else "aws"
            role_arn = f"arn:{partition}:iam::{account_id}:role/{opts.org_role}"
            targets.append(
                _Target(
                    role_arn,
                    sts_region,
                    regions,
                    base=base,
                    role_arn=role_arn,
                    external_id=opts.external_id,
                    expected_account=account_id,
                    record_failure=True,
                )
            )
        if inactive:
            self.notes.append(
                f"skipped {len(inactive)} account(s) of the AWS Organization that are not ACTIVE: {', '.join(inactive)}"
            )
        unknown = sorted(set(opts.org_exclude) - {item["Id"] for item in listed})
        if unknown:
            self.notes.append(f"--org-exclude {', '.join(unknown)}: not in the AWS Organization")
        return targets

    def _session(self, profile: str, where: str) -> boto3.Session:
        if profile not in self._sessions:
            self._sessions[profile] = _profile_session(profile, where, self.factory)
        return self._sessions[profile]

    def _file_targets(self) -> list[_Target]:
        opts = self.opts
        entries = read_accounts_file(opts.accounts_file, all_region_names)
        default_base: Account | None = None
        profile_bases: dict[str, Account] = {}
        targets = []
        for entry in entries:
            session = self._session(entry.profile, entry.where) if entry.profile else None
            if entry.role_arn is None:
                assert session is not None and entry.profile is not None
                _require_credentials(session, entry.profile)
                targets.append(
                    _Target(
                        entry.profile,
                        self._sts_region(session, entry.regions),
                        entry.regions or self._regions_for(session.region_name, entry.where),
                        session=session,
                        expected_account=entry.account_id,
                        where=entry.where,
                        record_failure=entry.account_id is not None,
                    )
                )
                continue
            # The role is assumed from the entry's profile, else from --profile or the ambient credentials.
            if session is not None and entry.profile is not None:
                if entry.profile not in profile_bases:
                    profile_bases[entry.profile] = self._base(session, entry.profile)
                base = profile_bases[entry.profile]
            else:
                if default_base is None:
                    default_base = self._base(*_base_sessions(opts)[0])
                base = default_base
            targets.append(
                _Target(
                    entry.role_arn,
                    self._sts_region(base.session, entry.regions),
                    entry.regions or self._regions_for(base.session.region_name, entry.where),
                    base=base,
                    role_arn=entry.role_arn,
                    external_id=entry.external_id or opts.external_id,
                    expected_account=entry.account_id,
                    where=entry.where,
                    record_failure=True,
                )
            )
        return targets

    # -- reaching them -------------------------------------------------------------------

    def reach(self, target: _Target) -> Account | FailedAccount:
        """The account ``target`` reaches, with its regions; or why it could not be reached."""
        prefix = f"{target.where}: " if target.where else ""
        try:
            if target.role_arn:
                assert target.base is not None
                account = _assume(self.factory, target.base, target.role_arn, target.external_id, target.sts_region)
            else:
                assert target.session is not None
                account = _identify(self.factory, target.session, target.label, target.sts_region)
        except ApiError as exc:
            if target.record_failure and target.known_account:
                return FailedAccount(target.known_account, target.label, exc.operation, exc.code, exc.message, target.regions)
            failure = aws_failure_message(exc, self.factory.endpoint_url)
            if target.role_arn:
                raise UserError(f"{prefix}cannot assume {target.role_arn}: {failure}") from None
            raise UserError(f"{prefix}cannot identify the AWS account for {target.label}: {failure}") from None
        account.regions = target.regions or self._all_regions(account, target.sts_region)
        return account

    def _all_regions(self, account: Account, probe_region: str) -> tuple[str, ...]:
        regions = self.bedrock_regions()
        enabled = _enabled_regions(self.factory, account, probe_region)
        return tuple(r for r in regions if enabled is None or r in enabled)

    def bedrock_regions(self) -> list[str]:
        if self._bedrock_regions is None:
            self._bedrock_regions = sorted(known_regions("bedrock"))
        return self._bedrock_regions


def _map(fn: Callable, items: list, workers: int, stopping: threading.Event) -> list:
    """``[fn(item) for item in items]`` on a thread pool, in order; prompt on Ctrl-C."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    executor = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="bedrock-sql-sts")
    try:
        results = list(executor.map(fn, items))
    except BaseException:
        stopping.set()  # backoffs give up at once
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    return results


def _check_options(opts: AwsOptions) -> None:
    if opts.regions and opts.all_regions:
        raise UserError("use either --region or --all-regions, not both")
    valid = all_region_names()
    unknown = [r for r in opts.regions if r not in valid]
    if unknown:
        raise UserError(f"unknown AWS region {unknown[0]!r} (for example us-east-1, eu-west-1)")
    if opts.max_workers < 1:
        raise UserError("--max-workers must be at least 1")
    for role_arn in opts.role_arns:
        if role_arn_account(role_arn) is None:
            raise UserError(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    if opts.org_role is not None:
        if opts.org_role.startswith("arn:"):
            raise UserError("--org-role takes the role's name (e.g. BedrockSqlAudit), not an ARN")
        if not ROLE_NAME.match(opts.org_role):
            raise UserError(f"--org-role {opts.org_role!r} is not an IAM role name")
    if opts.org_exclude and opts.org_role is None:
        raise UserError("--org-exclude needs --org-role")
    for account_id in opts.org_exclude:
        if not ACCOUNT_ID.match(account_id):
            raise UserError(f"--org-exclude {account_id!r} is not a 12-digit AWS account ID")
    if opts.accounts_file is not None:
        if opts.role_arns or opts.org_role:
            raise UserError("--accounts-file lists the accounts to audit: leave out --role-arn and --org-role")
        if len(opts.profiles) > 1:
            raise UserError(
                "with --accounts-file give at most one --profile (the credentials that assume the file's roles); "
                "list other profiles in the file"
            )
    elif opts.external_id and not (opts.role_arns or opts.org_role):
        raise UserError("--external-id is for the roles of --role-arn or --org-role (or --accounts-file)")


def resolve_scope(opts: AwsOptions, shard: Shard | None = None) -> Scope:
    """Turn the AWS options into accounts (identified by STS) and units to scan.

    Accounts come from the ambient credentials or each ``--profile``; or, with
    ``--role-arn``/``--org-role``, from roles those credentials assume (they are not
    scanned themselves); or from ``--accounts-file``. An account reached twice is scanned
    once. A role named explicitly (``--role-arn``) that cannot be assumed is a user error;
    an account of the Organization or of the accounts file that cannot be reached is
    recorded in :attr:`Scope.failed_accounts` (the collector writes it to
    ``bedrock_sql_errors``) and the others are still scanned.

    With ``shard`` only the accounts of that shard are kept (:mod:`bedrock_sql.shard`),
    before their roles are assumed when a role ARN or the accounts file names the account;
    a profile's account is known once STS has answered.
    """
    _check_options(opts)
    factory = ClientFactory(opts.endpoint_url, opts.max_workers)
    resolver = _Resolver(opts, factory)
    targets = resolver.targets()
    named = {t.known_account for t in targets if t.known_account}
    if shard:
        targets = [t for t in targets if t.known_account is None or shard.holds(t.known_account)]
    results = _map(resolver.reach, targets, opts.max_workers, factory.stopping)
    if shard:
        named.update(r.account_id for r in results)
        targets, results = _in_shard(shard, targets, results)

    accounts: list[Account] = []
    failed: dict[str, FailedAccount] = {}
    reached: dict[str, _Target] = {}
    for target, result in zip(targets, results):
        if isinstance(result, FailedAccount):
            failed.setdefault(result.account_id, result)
            continue
        if target.expected_account and result.account_id != target.expected_account:
            raise UserError(
                f"{target.where or target.label}: account_id {target.expected_account}, but the credentials of "
                f"{target.label} belong to account {result.account_id}"
            )
        first = reached.get(result.account_id)
        if first is not None:  # an account reached twice is collected once
            if target.where and first.where:
                raise UserError(f"{target.where}: account {result.account_id} is already listed ({first.where})")
            continue
        reached[result.account_id] = target
        accounts.append(result)

    failures = [f for account_id, f in failed.items() if account_id not in reached]
    if shard and named:
        # A shard may hold no account, or only unreachable ones: its snapshot still lands (and
        # says so), or merge would miss a shard -- or lose the unreachable accounts' errors.
        resolver.notes.insert(0, shard_note(shard, len(reached) + len(failures), len(named)))
    elif failures and not accounts:
        more = f" (and {len(failures) - 1} more account(s))" if len(failures) > 1 else ""
        raise UserError(f"could not reach any account: {failures[0]}{more}")
    elif not accounts:
        raise UserError("--org-role: no active account of the AWS Organization is left to audit")

    units = [Unit(account=a, account_id=a.account_id, region=r) for a in accounts for r in a.regions]
    scanned = sorted({u.region for u in units}) or resolver.bedrock_regions()
    failures = [f if f.regions else replace(f, regions=tuple(scanned)) for f in failures]
    for region in sorted({u.region for u in units}):
        if not offered("bedrock", region):
            resolver.notes.append(
                f"Amazon Bedrock is not offered in {region} (per botocore): its Bedrock tables are skipped there"
            )
    return Scope(accounts=accounts, units=units, factory=factory, failed_accounts=failures, notes=resolver.notes)


def _in_shard(shard: Shard, targets: list[_Target], results: list) -> tuple[list[_Target], list]:
    """The targets (and what reaching them gave) whose account falls in ``shard``."""
    # A named account is in the shard already (and a mismatch with STS is reported below).
    kept = [(t, r) for t, r in zip(targets, results) if shard.holds(t.known_account or r.account_id)]
    return [t for t, _ in kept], [r for _, r in kept]
