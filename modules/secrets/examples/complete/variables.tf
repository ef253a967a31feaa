variable "rotation_lambda_arn" {
  description = "ARN of the rotation function (this repository deploys one from apikeys.rotation with the cdktf stacks)."
  type        = string
}

variable "rotation_role_arn" {
  description = "ARN of the rotation function's role: it reads the secret."
  type        = string
}

variable "operator_role_arns" {
  description = "ARNs of the roles that operate the keys with the apikeys CLI."
  type        = list(string)
  default     = []
}
