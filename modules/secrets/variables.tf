################################################################################
# Secret
################################################################################

variable "name" {
  description = "Name of the secret, e.g. credlink/prod/api-keys. The ARN the application reads is derived from it."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", var.name))
    error_message = "name may contain only letters, digits and /_+=.@- (1 to 512 characters)."
  }
}

variable "description" {
  description = "Human-readable description of the secret."
  type        = string
  default     = "API keys (key:clientId:Name,...) read by the service at startup."
}

variable "kms_key_arn" {
  description = "ARN of the customer-managed KMS key that encrypts the secret. AWS-managed keys are not accepted."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias or key id."
  }
}

variable "recovery_window_days" {
  description = "Days Secrets Manager keeps a deleted secret recoverable. Valid values: 7 to 30."
  type        = number

  validation {
    condition     = var.recovery_window_days >= 7 && var.recovery_window_days <= 30
    error_message = "recovery_window_days must be between 7 and 30: immediate deletion (0) is not allowed for API keys."
  }
}

variable "tags" {
  description = "Tags for every resource the module creates."
  type        = map(string)
  default     = {}
}

################################################################################
# Replicas
################################################################################

variable "replicas" {
  description = "Regions to replicate the secret to, each with its own customer-managed KMS key ARN in that region."
  type = list(object({
    region      = string
    kms_key_arn = string
  }))
  default = []

  validation {
    condition     = length(distinct([for replica in var.replicas : replica.region])) == length(var.replicas)
    error_message = "Each replica region may appear only once."
  }
}

################################################################################
# Resource policy
################################################################################

variable "read_principal_arns" {
  description = "IAM role ARNs (path included, as aws:PrincipalArn carries them) allowed to read the secret value: the service's task roles, the rotation function's role, the operators. Every other principal is denied GetSecretValue, including the one running Terraform."
  type        = list(string)

  validation {
    condition     = length(var.read_principal_arns) > 0 && alltrue([for arn in var.read_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "read_principal_arns must list at least one IAM role ARN (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "value_writer_principal_arns" {
  description = "IAM role ARNs that run Terraform (plan and apply) for this secret. They may read the value only while the module manages one (secret_string_wo_version set): the provider reads the version back on every refresh. With the value written by other means, they are denied like everyone else."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.value_writer_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "value_writer_principal_arns must list IAM role ARNs (arn:aws:iam::<account>:role/<name>)."
  }
}

################################################################################
# Rotation
################################################################################

variable "rotation_enabled" {
  description = "Whether Secrets Manager rotates the secret with rotation_lambda_arn every rotation_days. A plain bool (known at plan time, unlike a function ARN created in the same apply). Valid values: true, false."
  type        = bool
  default     = false
}

variable "rotation_lambda_arn" {
  description = "ARN of the rotation function. Required when rotation_enabled is true; ignored otherwise."
  type        = string
  default     = null

  validation {
    condition     = !var.rotation_enabled || var.rotation_lambda_arn != null
    error_message = "rotation_enabled = true needs rotation_lambda_arn (the rotation function's ARN)."
  }
}

variable "rotation_days" {
  description = "Days between automatic rotations when rotation_enabled is true. Valid values: 1 to 90."
  type        = number
  default     = 30

  validation {
    condition     = var.rotation_days >= 1 && var.rotation_days <= 90
    error_message = "rotation_days must be between 1 and 90."
  }
}

################################################################################
# Value
################################################################################

variable "secret_string_wo" {
  description = "Optional value to write, JSON such as {\"apiKeys\": \"key:clientId:Name,...\"}. Ephemeral, and sent only through the provider's write-only secret_string_wo argument: never stored in plan or state. Leave null to manage only the container and put the value with the operator CLI."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "secret_string_wo_version" {
  description = "Plain number that decides whether and when secret_string_wo is written: null writes nothing; a new number writes the value given with it. Bump it each time the value should change."
  type        = number
  default     = null

  validation {
    condition     = var.secret_string_wo_version == null || try(var.secret_string_wo_version >= 1 && floor(var.secret_string_wo_version) == var.secret_string_wo_version, false)
    error_message = "secret_string_wo_version must be a whole number of 1 or more."
  }
}
