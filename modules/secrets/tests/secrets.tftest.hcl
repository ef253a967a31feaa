# Offline unit tests: `terraform test` with a mocked AWS provider (no credentials, no network).
#
# Every run is a plan with the mocks applied at plan time: Terraform 1.11's test runner
# refuses an apply run that leaves an optional ephemeral variable unset (hashicorp/terraform
# #38974, fixed in 1.17), and a plan shows exactly what would be sent to AWS.

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:credlink/test/api-keys-AbCdEf"
    }
  }
}

variables {
  name                        = "credlink/test/api-keys"
  kms_key_arn                 = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000001"
  recovery_window_days        = 7
  read_principal_arns         = ["arn:aws:iam::111122223333:role/api-task", "arn:aws:iam::111122223333:role/service-role/operators"]
  value_writer_principal_arns = ["arn:aws:iam::111122223333:role/deployer"]
}

run "container_only_without_a_value" {
  command = plan

  assert {
    condition     = aws_secretsmanager_secret.this.kms_key_id == var.kms_key_arn
    error_message = "The secret must be encrypted with the customer-managed key passed in."
  }

  assert {
    condition     = aws_secretsmanager_secret.this.recovery_window_in_days == 7
    error_message = "The recovery window must come from recovery_window_days."
  }

  assert {
    condition     = length(aws_secretsmanager_secret_version.this) == 0
    error_message = "Without a version number Terraform must manage only the container."
  }

  assert {
    condition     = output.secret_version_id == null && output.rotation_enabled == false
    error_message = "Outputs of disabled features must be null/false, not errors."
  }
}

run "resource_policy_denies_everyone_but_allowed_readers" {
  command = plan

  assert {
    condition     = aws_secretsmanager_secret_policy.this.block_public_policy == true
    error_message = "The resource policy must block public policies."
  }

  assert {
    condition = jsondecode(aws_secretsmanager_secret_policy.this.policy).Statement[0] == {
      Sid       = "DenyReadsExceptAllowedPrincipals"
      Effect    = "Deny"
      Principal = "*"
      Action    = "secretsmanager:GetSecretValue"
      Resource  = ["arn:aws:secretsmanager:us-east-1:111122223333:secret:credlink/test/api-keys-AbCdEf"]
      Condition = {
        StringNotEquals = {
          "aws:PrincipalArn" = [
            "arn:aws:iam::111122223333:role/api-task",
            "arn:aws:iam::111122223333:role/service-role/operators",
          ]
        }
      }
    }
    error_message = "The deny statement must name exactly the allowed readers: not the role running Terraform while it writes no value."
  }

  assert {
    condition     = length(jsondecode(aws_secretsmanager_secret_policy.this.policy).Statement) == 1
    error_message = "The resource policy must grant nothing: it only denies."
  }
}

run "value_is_written_only_through_the_write_only_argument" {
  command = plan

  variables {
    secret_string_wo         = "{\"apiKeys\": \"fake-test-key-0001:client-1:Test Client\"}"
    secret_string_wo_version = 1
  }

  assert {
    condition     = length(aws_secretsmanager_secret_version.this) == 1
    error_message = "A version number must create exactly one secret version."
  }

  assert {
    condition     = aws_secretsmanager_secret_version.this[0].secret_string_wo_version == 1
    error_message = "The write is keyed by the plain version number."
  }

  assert {
    condition     = aws_secretsmanager_secret_version.this[0].secret_string == null
    error_message = "The value must never be stored through the plain secret_string argument."
  }

  assert {
    condition = jsondecode(aws_secretsmanager_secret_policy.this.policy).Statement[0].Condition.StringNotEquals["aws:PrincipalArn"] == [
      "arn:aws:iam::111122223333:role/api-task",
      "arn:aws:iam::111122223333:role/service-role/operators",
      "arn:aws:iam::111122223333:role/deployer",
    ]
    error_message = "While Terraform manages a value, the roles running it may read it (the provider reads the version back)."
  }
}

run "a_value_without_a_version_is_not_written" {
  command = plan

  variables {
    secret_string_wo = "{\"apiKeys\": \"fake-test-key-0002:client-2:Test Client\"}"
  }

  expect_failures = [check.value_has_a_version]

  assert {
    condition     = length(aws_secretsmanager_secret_version.this) == 0
    error_message = "Without a version number nothing is written, even when a value is given."
  }
}

run "replicas_get_their_own_keys" {
  command = plan

  variables {
    replicas = [
      { region = "us-west-2", kms_key_arn = "arn:aws:kms:us-west-2:111122223333:key/00000000-0000-4000-8000-000000000002" },
    ]
  }

  assert {
    condition     = one(aws_secretsmanager_secret.this.replica).kms_key_id == "arn:aws:kms:us-west-2:111122223333:key/00000000-0000-4000-8000-000000000002"
    error_message = "Each replica must use the key of its own region."
  }

  assert {
    condition     = output.replica_arns == ["arn:aws:secretsmanager:us-west-2:111122223333:secret:credlink/test/api-keys-AbCdEf"]
    error_message = "Replica ARNs are the primary ARN in the replica's region."
  }

  assert {
    condition     = output.replica_arns_by_region == { "us-west-2" = "arn:aws:secretsmanager:us-west-2:111122223333:secret:credlink/test/api-keys-AbCdEf" }
    error_message = "A service in a replica region finds its ARN by region."
  }

  assert {
    condition     = contains(jsondecode(aws_secretsmanager_secret_policy.this.policy).Statement[0].Resource, output.replica_arns[0])
    error_message = "The deny must also cover the replica."
  }
}

run "rotation_schedule_when_enabled" {
  command = plan

  variables {
    rotation_enabled    = true
    rotation_lambda_arn = "arn:aws:lambda:us-east-1:111122223333:function:credlink-test-rotate"
    rotation_days       = 30
  }

  assert {
    condition     = aws_secretsmanager_secret_rotation.this[0].rotation_rules[0].automatically_after_days == 30
    error_message = "The rotation schedule must use rotation_days."
  }

  assert {
    condition     = aws_secretsmanager_secret_rotation.this[0].rotate_immediately == false
    error_message = "The first rotation must wait for the schedule: the value may not be there yet at apply."
  }
}

run "rotation_enabled_without_a_function_is_refused" {
  command = plan

  variables {
    rotation_enabled = true
  }

  expect_failures = [var.rotation_lambda_arn]
}

run "recovery_window_below_seven_days_is_refused" {
  command = plan

  variables {
    recovery_window_days = 0
  }

  expect_failures = [var.recovery_window_days]
}

run "rotation_longer_than_ninety_days_is_refused" {
  command = plan

  variables {
    rotation_days = 365
  }

  expect_failures = [var.rotation_days]
}

run "an_aws_managed_key_alias_is_refused" {
  command = plan

  variables {
    kms_key_arn = "alias/aws/secretsmanager"
  }

  expect_failures = [var.kms_key_arn]
}

run "value_writers_must_be_role_arns" {
  command = plan

  variables {
    value_writer_principal_arns = ["arn:aws:sts::111122223333:assumed-role/deployer/ci"]
  }

  expect_failures = [var.value_writer_principal_arns]
}

run "readers_must_be_role_arns" {
  command = plan

  variables {
    read_principal_arns = ["*"]
  }

  expect_failures = [var.read_principal_arns]
}
