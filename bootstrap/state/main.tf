################################################################################
# State bucket
################################################################################

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_18:Access logging needs a second bucket (and its own state); the bucket is read and written only by the pipeline roles, whose calls CloudTrail records.
  # checkov:skip=CKV_AWS_144:State is versioned and recoverable in place; a cross-region replica needs a second bucket, region and replication role this one-bucket stack does not own.
  # checkov:skip=CKV2_AWS_62:No consumer for event notifications: Terraform polls nothing, and the lock file is S3-native (use_lockfile).
  # checkov:skip=CKV_AWS_145:SSE-S3 by design (docs/design.md): state holds no secret value (write-only, ephemeral), and the S3 backend writes SSE-S3 objects unless given a key every pipeline role would need grants on.
  bucket = var.bucket_name

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-replaced-state-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

################################################################################
# TLS only
################################################################################

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.tls_only.json

  # A public access block applied after the policy could reject it as public; order them.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
