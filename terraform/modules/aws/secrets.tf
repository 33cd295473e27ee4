# The HS256 JWT secret and the cluster secret, unless the caller passes existing secrets.
# The random values are kept in the Terraform state: protect the state (encrypted remote
# backend) or pass jwt_secret_arn / cluster_secret_arn for secrets managed elsewhere.

resource "random_password" "jwt" {
  count = var.jwt_secret_arn == null ? 1 : 0

  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "jwt" {
  #checkov:skip=CKV2_AWS_57:Rotating the HS256 key invalidates every token already issued; it is a coordinated change (new key, new tokens, rolling restart), not a Lambda rotation.
  count = var.jwt_secret_arn == null ? 1 : 0

  name_prefix             = "${var.name}-jwt-"
  description             = "FerryMQ HS256 JWT secret (FERRYMQ_JWT_SECRET)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "jwt" {
  count = var.jwt_secret_arn == null ? 1 : 0

  secret_id     = aws_secretsmanager_secret.jwt[0].id
  secret_string = random_password.jwt[0].result
}

resource "random_password" "cluster" {
  count = var.cluster_secret_arn == null ? 1 : 0

  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "cluster" {
  #checkov:skip=CKV2_AWS_57:Rotating the cluster secret invalidates outstanding receipt handles and in-flight gateway-to-gateway calls; it is a coordinated rolling change, not a Lambda rotation.
  count = var.cluster_secret_arn == null ? 1 : 0

  name_prefix             = "${var.name}-cluster-"
  description             = "FerryMQ cluster secret (FERRYMQ_CLUSTER_SECRET)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "cluster" {
  count = var.cluster_secret_arn == null ? 1 : 0

  secret_id     = aws_secretsmanager_secret.cluster[0].id
  secret_string = random_password.cluster[0].result
}
