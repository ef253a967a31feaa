################################################################################
# State bucket
################################################################################

variable "bucket_name" {
  description = "Name of the S3 bucket that keeps Terraform state (globally unique; lower-case letters, digits, dots and hyphens, 3..63 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name: 3..63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "region" {
  description = "AWS region of the bucket, e.g. us-east-1."
  type        = string
}

variable "account_id" {
  description = "The AWS account the bucket must be created in (12 digits); null: the caller's account."
  type        = string
  default     = null

  validation {
    condition     = var.account_id == null || can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id: a 12-digit AWS account id."
  }
}

variable "project_name" {
  description = "Value of the Project tag."
  type        = string
  default     = "credlink"
}

variable "noncurrent_version_days" {
  description = "Days a replaced state version is kept before it expires (1..3650): how far back a state can be restored."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 3650
    error_message = "noncurrent_version_days: 1..3650."
  }
}
