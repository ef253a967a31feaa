provider "aws" {
  region = local.region
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The role running Terraform: while Terraform manages the value, the provider reads it back.
data "aws_iam_session_context" "current" {
  arn = data.aws_caller_identity.current.arn
}

locals {
  name   = "credlink-example-write-only"
  region = "us-east-1"

  tags = {
    Example = local.name
  }
}

################################################################################
# Secret
################################################################################

module "secrets" {
  source = "../.."

  name                 = "credlink/example-write-only/api-keys"
  kms_key_arn          = aws_kms_key.this.arn
  recovery_window_days = 7

  read_principal_arns         = var.read_principal_arns
  value_writer_principal_arns = [data.aws_iam_session_context.current.issuer_arn]

  # Sent through the provider's write-only argument, so it is in neither plan nor state.
  # Terraform writes it when the version changes: bump the version to write a new value.
  secret_string_wo         = var.api_keys
  secret_string_wo_version = var.api_keys_version

  tags = local.tags
}

################################################################################
# KMS key
################################################################################

resource "aws_kms_key" "this" {
  description             = "Encrypts ${local.name}'s API keys secret"
  deletion_window_in_days = 7
  enable_key_rotation     = true
  # The default key policy, written out: the account's IAM policies decide who may use the key.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountIamPoliciesDecide"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })

  tags = local.tags
}
