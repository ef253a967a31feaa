################################################################################
# Secret
################################################################################

output "secret_arn" {
  description = "ARN of the secret: the value to give the service as API_KEYS_SECRET_ARN."
  value       = aws_secretsmanager_secret.this.arn
}

output "secret_name" {
  description = "Name of the secret."
  value       = aws_secretsmanager_secret.this.name
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the secret."
  value       = aws_secretsmanager_secret.this.kms_key_id
}

################################################################################
# Replicas
################################################################################

output "replica_arns" {
  description = "ARNs of the secret's replicas, in the order of var.replicas."
  value       = local.replica_arns
}

output "replica_arns_by_region" {
  description = "ARNs of the secret's replicas by region: the API_KEYS_SECRET_ARN of a service running there."
  value       = zipmap([for replica in var.replicas : replica.region], local.replica_arns)
}

################################################################################
# Resource policy
################################################################################

output "resource_policy" {
  description = "The secret's resource policy document (JSON)."
  value       = aws_secretsmanager_secret_policy.this.policy
}

################################################################################
# Rotation
################################################################################

output "rotation_enabled" {
  description = "Whether the module manages a rotation schedule."
  value       = try(aws_secretsmanager_secret_rotation.this[0].rotation_enabled, false)
}

################################################################################
# Value
################################################################################

output "secret_version_id" {
  description = "Version id written through secret_string_wo, or null when the module manages only the container."
  value       = try(aws_secretsmanager_secret_version.this[0].version_id, null)
}
