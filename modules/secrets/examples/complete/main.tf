provider "aws" {
  region = local.region
}

provider "aws" {
  alias  = "replica"
  region = local.replica_region
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name           = "credlink-example-complete"
  region         = "us-east-1"
  replica_region = "us-west-2"

  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"

  tags = {
    Example = local.name
  }
}

################################################################################
# Secret
################################################################################

module "secrets" {
  source = "../.."

  name                 = "credlink/example-complete/api-keys"
  description          = "API keys of the example service (modules/secrets/examples/complete)."
  kms_key_arn          = aws_kms_key.primary.arn
  recovery_window_days = 7

  replicas = [
    {
      region      = local.replica_region
      kms_key_arn = aws_kms_key.replica.arn
    },
  ]

  # Everyone else is denied GetSecretValue by the secret's resource policy.
  read_principal_arns = concat([aws_iam_role.service.arn, var.rotation_role_arn], var.operator_role_arns)

  rotation_enabled    = true
  rotation_lambda_arn = var.rotation_lambda_arn
  rotation_days       = 30

  tags = local.tags
}

################################################################################
# KMS keys
################################################################################

locals {
  # The default key policy, written out: the account's IAM policies decide who may use the
  # key (stacks/kms.py in this repository writes a narrower one).
  key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountIamPoliciesDecide"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_key" "primary" {
  description             = "Encrypts ${local.name}'s API keys secret"
  deletion_window_in_days = 7
  enable_key_rotation     = true
  policy                  = local.key_policy

  tags = local.tags
}

resource "aws_kms_key" "replica" {
  provider = aws.replica

  description             = "Encrypts ${local.name}'s API keys secret (replica)"
  deletion_window_in_days = 7
  enable_key_rotation     = true
  policy                  = local.key_policy

  tags = local.tags
}

################################################################################
# Service
################################################################################

resource "aws_iam_role" "service" {
  name = "${local.name}-task"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "ecs-tasks.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = {
          StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
        }
      },
    ]
  })

  tags = local.tags
}

# The resource policy only denies: a reader also needs its own IAM permission.
resource "aws_iam_role_policy" "service_reads_the_secret" {
  name = "read-api-keys"
  role = aws_iam_role.service.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadTheSecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
        Resource = [module.secrets.secret_arn]
      },
      {
        Sid      = "DecryptThroughSecretsManager"
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = [aws_kms_key.primary.arn]
        Condition = {
          StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" }
        }
      },
    ]
  })
}
