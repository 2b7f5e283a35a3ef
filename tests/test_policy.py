"""bedrock_sql.policy: Steampipe's canonical policy form, and which statements grant the public.

Canonical cases carry the output of Steampipe's own Go code (tests/policy_cases.py). Public
cases follow AWS's documentation where they are taken from it (the page is named); the
rest are built statement by statement from the rule in the module's docstring.
"""

from __future__ import annotations

import json

import pytest

from bedrock_sql.policy import PolicyError, PublicStatement, canonical, is_public, public_statements
from policy_cases import OUR_CASES, STEAMPIPE_CASES

ACCOUNT = "111122223333"
ORG = "o-a1b2c3d4e5"


def _cases(cases):
    return [pytest.param(text, expected, id=name) for name, text, expected in cases]


# --- canonical form -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), _cases(STEAMPIPE_CASES) + _cases(OUR_CASES))
def test_canonical_is_steampipes_policy_std(text, expected):
    # json.dumps keeps key order: Go's JSON writes struct fields and map keys in sorted order.
    assert json.dumps(canonical(text)) == json.dumps(expected)


def test_canonical_takes_a_decoded_object_or_bytes_like_text():
    text = OUR_CASES[0][1]
    assert canonical(json.loads(text)) == canonical(text) == canonical(text.encode())


def test_condition_keys_differing_only_in_case_keep_every_value():
    # Steampipe keeps the values of one of the two at random (Go map order); IAM reads them as
    # one key, so we keep both sets of values.
    std = canonical({"Statement": [{"Effect": "Allow", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1", "AWS:PrincipalOrgId": "o-2"}}}]})
    assert std["Statement"][0]["Condition"] == {"StringEquals": {"aws:principalorgid": ["o-1", "o-2"]}}


# Text that is not a policy document. Where Steampipe's Go code gives a result for one of
# these, the comment says what it gives and why we refuse instead.
MALFORMED = [
    pytest.param("", "not JSON", id="empty_text"),
    pytest.param('{"Statement": [', "not JSON", id="truncated_json"),
    pytest.param("Statement", "not JSON", id="plain_words"),
    pytest.param(b'{"Statement": "\xff"}', "not UTF-8", id="not_utf8"),
    pytest.param('{"Statement": [{"Condition": {"N": {"k": NaN}}}]}', "NaN is not a JSON value", id="nan_is_not_json"),
    pytest.param("[]", "an array, not a JSON object", id="json_array"),
    pytest.param('"policy"', "a string, not a JSON object", id="json_string"),
    # Go decodes null into an empty policy: {"Statement": null, "Version": ""}.
    pytest.param("null", "null, not a JSON object", id="json_null"),
    pytest.param(None, "null, not a JSON object", id="python_none"),
    pytest.param(42, "a number, not a JSON object", id="python_number"),
    # Go gives {"Statement": null, ...}: a policy without statements is not a policy.
    pytest.param('{"Version": "2012-10-17"}', "has no Statement", id="no_statement"),
    pytest.param('{"Version": "2012-10-17", "Statement": null}', "has no Statement", id="null_statement"),
    pytest.param('{"Statement": "Allow everything"}', "Statement is a string", id="statement_string"),
    # Go reads a null statement as {"Effect": ""}.
    pytest.param('{"Statement": [null]}', r"Statement\[0\] is null, not an object", id="statement_null_item"),
    pytest.param('{"Statement": [{"Effect": "Allow"}, "x"]}', r"Statement\[1\] is a string", id="statement_string_item"),
    # A principal is "*" or an object (the IAM grammar); Go fails on a list too.
    pytest.param('{"Statement": [{"Effect": "Allow", "Principal": ["*"]}]}', r"Statement\[0\].Principal is an array", id="principal_list"),
    pytest.param('{"Statement": [{"Effect": "Allow", "Principal": null}]}', r"Statement\[0\].Principal is null", id="principal_null"),
    pytest.param('{"Statement": [{"Effect": "Allow", "Principal": 7}]}', r"Statement\[0\].Principal is a number", id="principal_number"),
    # Go panics on the next three.
    pytest.param('{"Statement": [{"Effect": "Allow", "Principal": {"AWS": null}}]}', r"Principal.AWS holds null", id="principal_type_null"),
    pytest.param('{"Statement": [{"Effect": "Allow", "Action": null}]}', r"Statement\[0\].Action is null", id="action_null"),
    pytest.param('{"Statement": [{"Condition": {"StringEquals": null}}]}', r"Condition.StringEquals is null", id="condition_operator_null"),
    pytest.param('{"Statement": [{"Condition": {"StringEquals": {"aws:SourceAccount": null}}}]}', "holds null", id="condition_value_null"),
    # Go writes these as its debugging text: "map[AWS:*]", "[1 2]".
    pytest.param('{"Statement": [{"Effect": "Allow", "Principal": {"AWS": {"AWS": "*"}}}]}', "holds an object", id="principal_nested_object"),
    pytest.param('{"Statement": [{"Condition": {"StringEquals": {"k": [["a"]]}}}]}', "holds an array", id="condition_value_nested_list"),
    pytest.param('{"Statement": [{"Condition": [{"StringEquals": {"k": "v"}}]}]}', r"Condition is an array", id="condition_array"),
    pytest.param('{"Statement": [{"Effect": 1}]}', r"Statement\[0\].Effect is a number", id="effect_number"),
    pytest.param('{"Statement": [{"Effect": "Allow", "Sid": ["a"]}]}', r"Statement\[0\].Sid is an array", id="sid_array"),
    pytest.param('{"Version": 2012, "Statement": []}', "Version is a number", id="version_number"),
    pytest.param('{"Statement": [{"Condition": {"N": {"k": 1e400}}}]}', "number out of range", id="number_out_of_range"),
]


@pytest.mark.parametrize(("policy", "message"), MALFORMED)
@pytest.mark.parametrize("analysis", [canonical, public_statements, is_public], ids=lambda f: f.__name__)
def test_malformed_policy_raises_policy_error(analysis, policy, message):
    with pytest.raises(PolicyError, match=message):
        analysis(policy)


def test_policy_error_is_a_value_error():
    assert issubclass(PolicyError, ValueError)


# --- which statements grant the public ------------------------------------------------------


def allow(principal="*", condition=None, **members):
    statement = {"Effect": "Allow", "Principal": principal, "Action": "kms:Decrypt", "Resource": "*", **members}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


# Keys that tie the caller to known accounts or organizations, each with a value that names
# one (under ...Equals) and a pattern that still names one (under ...Like).
CALLER_KEYS = {
    "kms:CallerAccount": (ACCOUNT, ACCOUNT),
    "aws:PrincipalAccount": (ACCOUNT, ACCOUNT),
    "aws:SourceAccount": (ACCOUNT, ACCOUNT),
    "aws:SourceOwner": (ACCOUNT, ACCOUNT),
    "aws:PrincipalOrgID": (ORG, ORG),
    "aws:SourceOrgID": (ORG, ORG),
    # IAM User Guide, aws:PrincipalOrgPaths: an OU path, and "o-a1b2c3d4e5/*" for the whole organization.
    "aws:PrincipalOrgPaths": (f"{ORG}/r-ab12/ou-ab12-11111111/", f"{ORG}/*"),
    "aws:SourceOrgPaths": (f"{ORG}/r-ab12/ou-ab12-11111111/", f"{ORG}/r-ab12/*"),
    "aws:PrincipalArn": (f"arn:aws:iam::{ACCOUNT}:role/bedrock-job", f"arn:aws:iam::{ACCOUNT}:role/*"),
    "aws:SourceArn": (f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-customization-job/abc", f"arn:aws:bedrock:us-east-1:{ACCOUNT}:*"),
    # A role's unique ID and any of its sessions ("AROA...:*"), IAM User Guide, aws:userid.
    "aws:userid": ("AIDAJQABLZS4A3QDU576Q", "AROAJQABLZS4A3QDU576Q:*"),
}
# AWS puts these in every signed request (IAM User Guide, "Availability" of each key; every
# KMS request is signed), so an IfExists or ForAllValues condition on them still restricts.
IN_EVERY_SIGNED_REQUEST = {"kms:CallerAccount", "aws:PrincipalAccount", "aws:PrincipalArn", "aws:userid"}
OPERATORS = [
    "StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike",
    "ForAnyValue:StringEquals", "ForAnyValue:StringEqualsIgnoreCase", "ForAnyValue:StringLike", "ForAnyValue:ArnLike",
    "ForAllValues:StringEquals", "ForAllValues:StringLike",
    "StringEqualsIfExists", "StringLikeIfExists", "ArnLikeIfExists", "ForAnyValue:StringEqualsIfExists",
]


def _matrix():
    for key, (exact, pattern) in CALLER_KEYS.items():
        for operator in OPERATORS:
            value = pattern if "Like" in operator else exact
            absent_passes = ("IfExists" in operator or "ForAllValues" in operator) and key not in IN_EVERY_SIGNED_REQUEST
            yield pytest.param(key, operator, value, absent_passes, id=f"{key}-{operator}")


@pytest.mark.parametrize(("key", "operator", "value", "public"), list(_matrix()))
def test_each_caller_key_under_each_operator_form(key, operator, value, public):
    document = policy(allow("*", {operator: {key: value}}))
    assert is_public(document) is public
    if public:
        assert f"{key} under {operator} (true for requests without the key)" in public_statements(document)[0].reason


PUBLIC = [
    pytest.param(allow("*"), ("*",), id="principal_star"),
    pytest.param(allow({"AWS": "*"}), ("AWS:*",), id="principal_aws_star"),
    pytest.param(allow({"AWS": ["*"]}), ("AWS:*",), id="principal_aws_star_list"),
    pytest.param(allow({"AWS": [f"arn:aws:iam::{ACCOUNT}:root", "*"]}), ("AWS:*",), id="principal_account_and_star"),
    pytest.param(allow({"aws": "*"}), ("aws:*",), id="principal_lower_case_type"),
    pytest.param(allow({"Service": "*", "AWS": "*"}), ("AWS:*", "Service:*"), id="principal_star_of_two_types"),
    # IAM User Guide, Principal element: Allow with NotPrincipal allows everyone but those listed.
    pytest.param({"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
                 ("NotPrincipal",), id="not_principal"),
    pytest.param(allow("*", Effect="allow"), ("*",), id="effect_lower_case"),
]


@pytest.mark.parametrize(("statement", "principals"), PUBLIC)
def test_wildcard_principal_without_condition_is_public(statement, principals):
    [found] = public_statements(policy(statement))
    assert found.principals == principals
    assert found.index == 0 and found.sid is None


# Conditions that leave a wildcard principal public, each with how the reason lists it.
NOT_RESTRICTING = [
    # IAM User Guide, aws:SecureTransport / aws:SourceIp / aws:SourceVpc(e): about the
    # connection, not about who the caller is.
    pytest.param({"Bool": {"aws:SecureTransport": "true"}}, "aws:SecureTransport", id="secure_transport_only"),
    pytest.param({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, "aws:SourceIp", id="source_ip_only"),
    pytest.param({"StringEquals": {"aws:SourceVpc": "vpc-1a2b3c4d"}}, "aws:SourceVpc", id="source_vpc_only"),
    pytest.param({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}, "aws:SourceVpce", id="source_vpce_only"),
    # KMS Developer Guide, kms:CallerAccount: the EBS statement of an AWS managed key without
    # its kms:CallerAccount -- any account's principals can use the key through EBS.
    pytest.param({"StringEquals": {"kms:ViaService": "ec2.us-west-2.amazonaws.com"}}, "kms:ViaService", id="via_service_only"),
    # The encryption-context condition of the key policy CloudTrail documents for its trails
    # (CloudTrail User Guide), here with a wildcard principal instead of CloudTrail's.
    pytest.param({"StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{ACCOUNT}:trail/*"}},
                 "kms:EncryptionContext:aws:cloudtrail:arn", id="encryption_context_only"),
    pytest.param({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department"]}}, "kms:EncryptionContextKeys",
                 id="encryption_context_keys_only"),
    pytest.param({"Bool": {"kms:GrantIsForAWSResource": "true"}}, "kms:GrantIsForAWSResource", id="grant_is_for_aws_resource_only"),
    pytest.param({"Bool": {"aws:SecureTransport": "true"}, "IpAddress": {"aws:SourceIp": "203.0.113.0/24"},
                  "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
                 "aws:SecureTransport, aws:SourceIp, kms:ViaService", id="transport_ip_and_service_together"),
    # Negations name who is kept out, not who is let in.
    pytest.param({"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}}, "aws:PrincipalAccount under StringNotEquals (a negation)",
                 id="string_not_equals"),
    pytest.param({"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:*"}}, "aws:PrincipalArn under ArnNotLike (a negation)",
                 id="arn_not_like"),
    pytest.param({"StringNotEqualsIfExists": {"aws:PrincipalOrgID": ORG}}, "aws:PrincipalOrgID under StringNotEqualsIfExists (a negation)",
                 id="string_not_equals_if_exists"),
    pytest.param({"Null": {"aws:PrincipalOrgID": "false"}}, "aws:PrincipalOrgID under Null", id="null_operator"),
    # Wildcards and policy variables: the values match callers of any account.
    pytest.param({"StringLike": {"aws:PrincipalAccount": "*"}}, 'aws:PrincipalAccount "*" under StringLike (a wildcard)', id="account_star"),
    pytest.param({"StringEquals": {"kms:CallerAccount": "*"}}, 'kms:CallerAccount "*" under StringEquals (a wildcard)', id="account_star_under_equals"),
    pytest.param({"StringLike": {"aws:SourceAccount": "1111222233??"}}, 'aws:SourceAccount "1111222233??" under StringLike (a wildcard)',
                 id="account_question_marks"),
    pytest.param({"StringLike": {"aws:PrincipalOrgID": "o-*"}}, 'aws:PrincipalOrgID "o-*" under StringLike (a wildcard)', id="org_id_o_star"),
    pytest.param({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-*/*"}},
                 'aws:PrincipalOrgPaths "o-*/*" under ForAnyValue:StringLike (a wildcard)', id="org_path_any_organization"),
    # IAM User Guide, aws:PrincipalOrgPaths: root and OU IDs are unique only within an organization.
    pytest.param({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "r-ab12/ou-ab12-11111111/*"}},
                 'aws:PrincipalOrgPaths "r-ab12/ou-ab12-11111111/*" under ForAnyValue:StringLike (does not start with an organization ID)',
                 id="org_path_without_organization"),
    pytest.param({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}, 'aws:PrincipalArn "arn:aws:iam::*:root" under ArnLike (a wildcard)',
                 id="principal_arn_any_account_root"),
    pytest.param({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:*"}}, 'aws:PrincipalArn "arn:aws:iam::*:*" under ArnLike (a wildcard)',
                 id="principal_arn_any_account"),
    pytest.param({"StringLike": {"aws:PrincipalArn": "*"}}, 'aws:PrincipalArn "*" under StringLike (a wildcard)', id="principal_arn_star"),
    pytest.param({"StringEquals": {"aws:PrincipalArn": ACCOUNT}}, f'aws:PrincipalArn "{ACCOUNT}" under StringEquals (not an ARN)',
                 id="principal_arn_not_an_arn"),
    pytest.param({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::model-bucket"}}, 'aws:SourceArn "arn:aws:s3:::model-bucket" under ArnLike (names no account)',
                 id="source_arn_without_account"),
    # Under StringLike a "*" before the account can stretch over colons; ArnLike matches field by field.
    pytest.param({"StringLike": {"aws:SourceArn": f"arn:aws:logs:*:{ACCOUNT}:*"}},
                 f'aws:SourceArn "arn:aws:logs:*:{ACCOUNT}:*" under StringLike (a wildcard before the account, which a string operator lets span colons)',
                 id="source_arn_region_wildcard_under_string_like"),
    pytest.param({"StringLike": {"aws:userid": "AROA*"}}, 'aws:userid "AROA*" under StringLike (a wildcard)', id="userid_any_role"),
    pytest.param({"StringLike": {"aws:userid": "*:alice"}}, 'aws:userid "*:alice" under StringLike (a wildcard)', id="userid_any_account_session"),
    pytest.param({"StringEquals": {"aws:SourceAccount": "${aws:PrincipalAccount}"}},
                 'aws:SourceAccount "${aws:PrincipalAccount}" under StringEquals (a policy variable)', id="policy_variable"),
    pytest.param({"StringEquals": {"aws:PrincipalAccount": [ACCOUNT, "*"]}}, 'aws:PrincipalAccount "*" under StringEquals (a wildcard)',
                 id="one_wildcard_among_accounts"),
    pytest.param({"StringEquals": {"aws:PrincipalAccount": []}}, "aws:PrincipalAccount under StringEquals with no value", id="no_value"),
    pytest.param({"StringEquals": {"aws:PrincipalAccount": ""}}, 'aws:PrincipalAccount "" under StringEquals (empty)', id="empty_value"),
    # IAM User Guide, aws:username: present only for IAM users, and names are unique only
    # within an account: anyone can create a user called alice.
    pytest.param({"StringEquals": {"aws:username": "alice"}}, "aws:username (user names repeat across accounts)", id="username"),
    # IfExists/ForAllValues are true when the key is absent: aws:PrincipalOrgID is absent for
    # principals outside any organization, aws:SourceAccount when no service calls.
    pytest.param({"StringEqualsIfExists": {"aws:PrincipalOrgID": ORG}},
                 "aws:PrincipalOrgID under StringEqualsIfExists (true for requests without the key)", id="org_id_if_exists"),
    pytest.param({"ForAllValues:StringEquals": {"aws:PrincipalOrgID": ORG}},
                 "aws:PrincipalOrgID under ForAllValues:StringEquals (true for requests without the key)", id="org_id_for_all_values"),
    pytest.param({"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}},
                 "aws:SourceAccount under StringEqualsIfExists (true for requests without the key)", id="source_account_if_exists"),
    pytest.param({"stringlike": {"AWS:PrincipalOrgID": "o-*"}}, 'AWS:PrincipalOrgID "o-*" under stringlike (a wildcard)',
                 id="mixed_case_wildcard_still_public"),
    # One key to IAM, as in the canonical form: the wildcard among its values opens it.
    pytest.param({"StringEquals": {"aws:PrincipalOrgID": ORG, "AWS:PRINCIPALORGID": "*"}},
                 'aws:PrincipalOrgID "*" under StringEquals (a wildcard)', id="same_key_in_two_cases_one_wildcard"),
]


@pytest.mark.parametrize(("condition", "listed"), NOT_RESTRICTING)
def test_condition_that_does_not_name_the_caller_leaves_statement_public(condition, listed):
    [found] = public_statements(policy(allow({"AWS": "*"}, condition, Sid="Open")))
    assert found.reason == (
        'statement "Open" (#1) allows principal AWS:* and no condition limits the caller to known accounts or organizations '
        f"(its conditions: {listed})"
    )


# Policies in which no statement grants the public.
NOT_PUBLIC = [
    # KMS Developer Guide, kms:CallerAccount: the AWS managed key for Amazon EBS.
    pytest.param(policy({
        "Sid": "Allow access through EBS for all principals in the account that are authorized to use EBS",
        "Effect": "Allow", "Principal": {"AWS": "*"},
        "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": "ec2.us-west-2.amazonaws.com"}},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
        "Resource": "*",
    }), id="aws_managed_ebs_key"),
    # Secrets Manager User Guide: the key policy of its AWS managed key, aws/secretsmanager.
    pytest.param({"Id": "auto-secretsmanager-2", "Version": "2012-10-17", "Statement": [
        {"Sid": "Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager",
         "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:CreateGrant", "kms:DescribeKey"],
         "Resource": "*", "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": "secretsmanager.us-west-2.amazonaws.com"}}},
        {"Sid": "Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager",
         "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "kms:GenerateDataKey*", "Resource": "*",
         "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT}, "StringLike": {"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com"}}},
        {"Sid": "Allow direct access to key metadata to the account", "Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:root"]},
         "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"], "Resource": "*"},
    ]}, id="aws_managed_secrets_manager_key"),
    # KMS Developer Guide, "Default key policy": the account root only.
    pytest.param(policy({"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                         "Action": "kms:*", "Resource": "*"}), id="default_key_policy"),
    # IAM User Guide, aws:PrincipalOrgID: a single-object Statement for the whole organization.
    pytest.param({"Version": "2012-10-17", "Statement": {"Sid": "AllowPutObject", "Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
                  "Resource": "arn:aws:s3:::policy-ninja-dev/*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-xxxxxxxxxxx"]}}}},
                 id="org_id_single_object_statement"),
    # IAM User Guide, aws:PrincipalOrgPaths: one OU, an OU and its children, two OUs.
    pytest.param(policy(allow("*", {"ForAnyValue:StringEquals": {"aws:PrincipalOrgPaths": ["o-a1b2c3d4e5/r-f6g7h8i9j0example/ou-ghi0-awsccccc/ou-jkl0-awsddddd/"]}})),
                 id="org_paths_one_ou"),
    pytest.param(policy(allow("*", {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["o-a1b2c3d4e5/r-f6g7h8i9j0example/ou-ghi0-awsccccc/ou-jkl0-awsddddd/*"]}})),
                 id="org_paths_ou_and_children"),
    pytest.param(policy(allow("*", {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [
        "o-a1b2c3d4e5/r-f6g7h8i9j0example/ou-def0-awsbbbbb/*", "o-a1b2c3d4e5/r-f6g7h8i9j0example/ou-jkl0-awsddddd/*"]}})),
                 id="org_paths_two_ous"),
    # One restricting condition is enough: conditions are ANDed.
    pytest.param(policy(allow("*", {"Bool": {"aws:SecureTransport": "true"}, "StringEquals": {"aws:PrincipalOrgID": ORG}})),
                 id="secure_transport_and_org_id"),
    pytest.param(policy(allow("*", {"StringEquals": {"kms:CallerAccount": ACCOUNT}, "StringLike": {"aws:PrincipalOrgID": "o-*"}})),
                 id="restricting_condition_beside_a_wildcard_one"),
    pytest.param(policy(allow("*", {"stringequals": {"AWS:PRINCIPALORGID": ORG}})), id="mixed_case_operator_and_key"),
    pytest.param(policy(allow("*", {"ForAnyValue:StringEquals": {"KMS:CallerAccount": [ACCOUNT, "444455556666"]}})), id="two_known_accounts"),
    pytest.param(policy(allow("*", {"ArnLike": {"aws:SourceArn": f"arn:aws:logs:*:{ACCOUNT}:*"}})), id="source_arn_region_wildcard_under_arn_like"),
    pytest.param(policy(allow("*", {"StringEquals": {"kms:CallerAccount": 111122223333}})), id="account_as_json_number"),
    # NotPrincipal, limited to the organization.
    pytest.param(policy({"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/mallory"}, "Action": "kms:Decrypt",
                         "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG}}}), id="not_principal_within_organization"),
    # Deny never grants (Steampipe's "MustBeEncryptedInTransit" case).
    pytest.param(policy({"Sid": "MustBeEncryptedInTransit", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
                         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}), id="deny_star"),
    pytest.param(policy({"Effect": "Deny", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}),
                 id="deny_not_principal"),
    pytest.param(policy(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})), id="account_root_principal"),
    pytest.param(policy(allow({"AWS": ACCOUNT})), id="account_id_principal"),
    pytest.param(policy(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/bedrock-job"})), id="role_principal"),
    pytest.param(policy(allow({"Service": "bedrock.amazonaws.com"})), id="service_principal"),
    # A principal ARN cannot hold a wildcard (IAM User Guide, Principal element): AWS rejects
    # this policy, and only a lone "*" is the wildcard principal.
    pytest.param(policy(allow({"AWS": "arn:aws:iam::*:root"})), id="wildcard_inside_principal_arn"),
    pytest.param(policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}), id="no_principal"),
    pytest.param(policy(), id="no_statements"),
]


@pytest.mark.parametrize("document", NOT_PUBLIC)
def test_policy_without_public_statement(document):
    assert public_statements(document) == []
    assert is_public(document) is False
    assert is_public(json.dumps(document)) is False


def test_multiple_statements_report_their_own_index_and_sid():
    document = policy(
        allow("*", Sid="Open"),
        allow({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, Sid="Root"),
        allow({"AWS": ["*"]}, {"Bool": {"aws:SecureTransport": "true"}}),
        allow("*", {"StringEquals": {"aws:PrincipalOrgID": ORG}}, Sid="Org"),
        {"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*", "Sid": "AllBut"},
    )
    assert public_statements(document) == [
        PublicStatement(0, "Open", ("*",), 'statement "Open" (#1) allows principal * with no condition'),
        PublicStatement(
            2, None, ("AWS:*",),
            "statement #3 allows principal AWS:* and no condition limits the caller to known accounts or organizations "
            "(its conditions: aws:SecureTransport)",
        ),
        PublicStatement(
            4, "AllBut", ("NotPrincipal",),
            'statement "AllBut" (#5) allows every principal except those in NotPrincipal '
            "(Allow with NotPrincipal, which AWS advises against) with no condition",
        ),
    ]
    assert is_public(document) is True


def test_reason_of_the_briefs_example():
    document = policy(
        allow({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, Sid="Root"),
        allow("*", {"Bool": {"aws:SecureTransport": "true"}}, Sid="AllowAll"),
    )
    [found] = public_statements(document)
    assert (found.index, found.sid) == (1, "AllowAll")
    assert found.reason == (
        'statement "AllowAll" (#2) allows principal * and no condition limits the caller to known accounts or organizations '
        "(its conditions: aws:SecureTransport)"
    )


def test_single_object_statement_that_is_public():
    text = json.dumps({"Version": "2012-10-17", "Statement": allow("*", {"Bool": {"aws:SecureTransport": "true"}}, Sid="Only")})
    [found] = public_statements(text)
    assert (found.index, found.sid, found.principals) == (0, "Only", ("*",))


def test_member_names_are_read_case_insensitively_like_steampipe():
    text = '{"statement": [{"effect": "Allow", "principal": {"aws": "*"}, "action": "kms:Decrypt", "condition": {"Bool": {"aws:SecureTransport": "true"}}}]}'
    [found] = public_statements(text)
    assert found.principals == ("aws:*",)
    assert "aws:SecureTransport" in found.reason


def test_public_statement_is_frozen():
    found = public_statements(policy(allow("*")))[0]
    with pytest.raises(AttributeError):
        found.reason = "changed"
