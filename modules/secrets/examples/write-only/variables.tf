variable "api_keys" {
  description = "The value to write, JSON such as {\"apiKeys\": \"key:clientId:Name,...\"}; give it as TF_VAR_api_keys from your secret store. Ephemeral: it is in neither plan nor state, so every plan and apply needs it."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "api_keys_version" {
  description = "Version of var.api_keys: a new whole number writes the value as a new version of the secret."
  type        = number
  default     = 1
}

variable "read_principal_arns" {
  description = "ARNs of the IAM roles that read the keys (the service's task roles)."
  type        = list(string)
}
