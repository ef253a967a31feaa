"""The roles an environment names but does not create, looked up at plan time.

A role is named in an env file by its name or its full ARN. Either way it is read with the
`aws_iam_role` data source, so:
- a role under a path (`/service-role/`, SSO's `/aws-reserved/sso.amazonaws.com/`) gets its
  real ARN, the one `aws:PrincipalArn` carries;
- a role that does not exist fails the plan before anything is created;
- an ARN that names another account or path than the role's fails the plan too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cdktf import Postcondition, TerraformResourceLifecycle
from constructs import Construct

from stacks.aws import DataAwsIamRole
from stacks.config import role_name

__all__ = ["ExistingRoles"]


class ExistingRoles(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, roles: Iterable[tuple[str, str]], env_file: str) -> None:
        """`roles`: (env file field, role name or ARN) pairs; a role named twice is read once."""
        super().__init__(scope, construct_id)
        self._arns: dict[str, str] = {}
        for field, role in roles:
            name = role_name(role)
            if name in self._arns:
                continue
            given_arn = role if role != name else None
            lookup = DataAwsIamRole(
                self,
                re.sub(r"[^A-Za-z0-9_]", "_", name),
                name=name,
                lifecycle=TerraformResourceLifecycle(
                    postcondition=[
                        Postcondition(
                            condition=f"${{self.arn == {_hcl_string(given_arn)}}}",
                            error_message=f"{env_file}: {field}: {role} is not this role's ARN: it is ${{self.arn}}",
                        )
                    ]
                )
                if given_arn
                else None,
            )
            self._arns[name] = lookup.arn

    def arn(self, role: str) -> str:
        """The role's ARN (path included), resolved at plan time."""
        return self._arns[role_name(role)]


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${") + '"'
