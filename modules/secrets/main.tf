################################################################################
# Secret
################################################################################

resource "aws_secretsmanager_secret" "this" {
  name                    = var.name
  description             = var.description
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_days

  dynamic "replica" {
    for_each = var.replicas

    content {
      region     = replica.value.region
      kms_key_id = replica.value.kms_key_arn
    }
  }

  tags = var.tags
}

################################################################################
# Replicas
################################################################################

locals {
  # The region is read from the secret's own ARN (arn:<partition>:secretsmanager:<region>:...),
  # not from the aws_region data source, whose region attribute is `name` up to provider 5.x
  # and `region` from 6.0 (`name`, then `id`, deprecated there): no attribute is warning-free on
  # every version this module accepts. A replica's ARN is the primary's in the replica's region.
  secret_region = split(":", aws_secretsmanager_secret.this.arn)[3]
  replica_arns = [
    for replica in var.replicas :
    replace(aws_secretsmanager_secret.this.arn, ":${local.secret_region}:", ":${replica.region}:")
  ]
}

################################################################################
# Resource policy
################################################################################

locals {
  # The provider reads a version back (GetSecretValue) whenever it refreshes it, so the roles
  # that run Terraform must be able to read the value exactly while Terraform manages one.
  readers = distinct(concat(
    var.read_principal_arns,
    var.secret_string_wo_version == null ? [] : var.value_writer_principal_arns,
  ))
}

resource "aws_secretsmanager_secret_policy" "this" {
  secret_arn = aws_secretsmanager_secret.this.arn

  # jsonencode rather than a policy-document data source: the document is then visible to
  # plan, to `terraform test` assertions and to policy scanners as it will be sent.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyReadsExceptAllowedPrincipals"
        Effect    = "Deny"
        Principal = "*"
        Action    = "secretsmanager:GetSecretValue"
        Resource  = concat([aws_secretsmanager_secret.this.arn], local.replica_arns)
        Condition = {
          StringNotEquals = {
            "aws:PrincipalArn" = local.readers
          }
        }
      },
    ]
  })

  # Secrets Manager refuses THIS policy if it grants access outside the account. It checks
  # only this PutResourcePolicy call: a later call without the flag, or DeleteResourcePolicy,
  # can still remove the Deny. An SCP that denies secretsmanager:PutResourcePolicy unless
  # secretsmanager:BlockPublicPolicy is true (and DeleteResourcePolicy) makes it hold for the
  # whole account (docs/security-model.md).
  block_public_policy = true
}

################################################################################
# Rotation
################################################################################

resource "aws_secretsmanager_secret_rotation" "this" {
  count = var.rotation_enabled ? 1 : 0

  secret_id           = aws_secretsmanager_secret.this.id
  rotation_lambda_arn = var.rotation_lambda_arn

  # The first rotation comes on schedule (or with `apikeys rotate`), not at apply: the value
  # is usually written after the first apply, by `apikeys migrate`.
  rotate_immediately = false

  rotation_rules {
    automatically_after_days = var.rotation_days
  }
}

################################################################################
# Value
################################################################################

resource "aws_secretsmanager_secret_version" "this" {
  count = var.secret_string_wo_version == null ? 0 : 1

  secret_id = aws_secretsmanager_secret.this.id

  # Write-only: Terraform sends the value and keeps only the version number. Later runs
  # with the same version need no value (nothing is written), so none is required here.
  secret_string_wo         = var.secret_string_wo
  secret_string_wo_version = var.secret_string_wo_version
}

check "value_has_a_version" {
  assert {
    condition     = var.secret_string_wo == null || var.secret_string_wo_version != null
    error_message = "secret_string_wo was given without secret_string_wo_version, so it was not written: set secret_string_wo_version to a new number."
  }
}
