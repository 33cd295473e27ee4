# FerryMQ on an existing MinIO: a bucket, a user, and a policy that confines the user to the
# bucket prefix. The gateways on Kubernetes (kubernetes.tf) use the user's keys.

locals {
  store_url      = "s3://${minio_s3_bucket.this.bucket}/${var.bucket_prefix}"
  archive_prefix = "${var.bucket_prefix}/archive/"
  bucket_arn     = "arn:aws:s3:::${minio_s3_bucket.this.bucket}"
}

resource "minio_s3_bucket" "this" {
  bucket        = var.bucket_name
  acl           = "private"
  force_destroy = var.force_destroy
}

resource "minio_ilm_policy" "archive" {
  count = var.archive_expiration_days == null ? 0 : 1

  bucket = minio_s3_bucket.this.bucket

  # Only the Parquet files (`archive/topic=…`): the Iceberg table's metadata
  # (`archive/metadata/`) is the compactor's to expire.
  rule {
    id         = "expire-archive"
    expiration = "${var.archive_expiration_days}d"
    filter     = "${local.archive_prefix}topic="
  }
}

resource "minio_iam_policy" "gateway" {
  name = "${var.minio_user}-policy"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListPrefix"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [local.bucket_arn]
        Condition = {
          StringLike = { "s3:prefix" = [var.bucket_prefix, "${var.bucket_prefix}/*"] }
        }
      },
      {
        Sid      = "BucketInfo"
        Effect   = "Allow"
        Action   = ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
        Resource = [local.bucket_arn]
      },
      {
        Sid    = "ObjectsUnderPrefix"
        Effect = "Allow"
        Action = [
          "s3:GetObject",
          "s3:PutObject",
          "s3:DeleteObject",
          "s3:AbortMultipartUpload",
          "s3:ListMultipartUploadParts",
        ]
        Resource = ["${local.bucket_arn}/${var.bucket_prefix}/*"]
      },
    ]
  })
}

# The user's name is its access key; MinIO generates the secret key.
resource "minio_iam_user" "gateway" {
  name          = var.minio_user
  force_destroy = true
  tags = {
    app = "ferrymq"
  }
}

resource "minio_iam_user_policy_attachment" "gateway" {
  user_name   = minio_iam_user.gateway.id
  policy_name = minio_iam_policy.gateway.id
}
