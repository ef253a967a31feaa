output "secret_arn" {
  description = "ARN of the secret: the service's API_KEYS_SECRET_ARN."
  value       = module.secrets.secret_arn
}

output "replica_arns" {
  description = "ARNs of the replicas: API_KEYS_SECRET_ARN for a service in the replica region."
  value       = module.secrets.replica_arns
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the secret."
  value       = module.secrets.kms_key_arn
}

output "resource_policy" {
  description = "The secret's resource policy document (JSON)."
  value       = module.secrets.resource_policy
}

output "rotation_enabled" {
  description = "Whether the module manages a rotation schedule."
  value       = module.secrets.rotation_enabled
}
