# FerryMQ on AWS: an S3 bucket (the only durable state), stateless gateways on ECS Fargate behind
# an Application Load Balancer, the compactor as a scheduled ECS task, and a Glue table over the
# Parquet archive for Athena.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  store_url      = "s3://${aws_s3_bucket.this.bucket}/${var.bucket_prefix}"
  archive_prefix = "${var.bucket_prefix}/archive/"
  archive_url    = "s3://${aws_s3_bucket.this.bucket}/${local.archive_prefix}"

  bucket_arn        = aws_s3_bucket.this.arn
  prefix_object_arn = "${aws_s3_bucket.this.arn}/${var.bucket_prefix}/*"

  jwt_secret_arn     = var.jwt_secret_arn != null ? var.jwt_secret_arn : aws_secretsmanager_secret.jwt[0].arn
  cluster_secret_arn = var.cluster_secret_arn != null ? var.cluster_secret_arn : aws_secretsmanager_secret.cluster[0].arn

  # Environment common to the gateways and the compactor. S3 credentials come from the task
  # role (object_store reads AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, which ECS sets).
  common_environment = [
    { name = "FERRYMQ_STORE", value = local.store_url },
    { name = "FERRYMQ_LOG", value = var.log_level },
    { name = "AWS_REGION", value = local.region },
  ]

  secrets = [
    { name = "FERRYMQ_JWT_SECRET", valueFrom = local.jwt_secret_arn },
    { name = "FERRYMQ_CLUSTER_SECRET", valueFrom = local.cluster_secret_arn },
  ]

  tags = merge({ "app" = "ferrymq", "ferrymq:deployment" = var.name }, var.tags)
}
