# ---------------------------------------------------------------------------------------------
# Naming
# ---------------------------------------------------------------------------------------------

variable "name" {
  description = "Name prefix for every resource (ECS cluster and service, ALB, IAM roles, log group, Glue database)."
  type        = string
  default     = "ferrymq"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}$", var.name))
    error_message = "name must be 2-23 characters of lowercase letters, digits and '-', starting with a letter (the ALB and target group names derive from it and are limited to 32 characters)."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Bucket
# ---------------------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the S3 bucket to create. It holds segments, the manifest log and checkpoints, and the Parquet archive."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit."
  }
}

variable "bucket_prefix" {
  description = "Key prefix inside the bucket under which FerryMQ keeps everything (segments/, manifest/, archive/). The gateways' IAM role can touch nothing outside it."
  type        = string
  default     = "ferrymq"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.bucket_prefix))
    error_message = "bucket_prefix must be one or more path segments of letters, digits, '.', '_' and '-', separated by single '/', without a leading or trailing '/'."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete the bucket even when it still holds objects. Leave false in production."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Optional customer-managed KMS key ARN used for the bucket (SSE-KMS), the CloudWatch log group and the Secrets Manager secrets. When null, AWS-managed keys are used (aws/s3, aws/secretsmanager) and the log group uses CloudWatch Logs' default encryption. The key policy must allow the CloudWatch Logs service principal when it is set."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key (or alias) ARN."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Versioning is enabled on the bucket so that an accidental delete or overwrite can be undone; noncurrent versions are removed after this many days (segments and log versions that FerryMQ garbage-collects otherwise pile up)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && var.noncurrent_version_expiration_days <= 3650
    error_message = "noncurrent_version_expiration_days must be between 1 and 3650."
  }
}

variable "archive_expiration_days" {
  description = "Optional: delete Parquet archive files (<prefix>/archive/) this many days after they were written. null keeps the archive forever. A backstop only: files deleted this way stay in the catalogue and the Iceberg table, whose readers then fail on them; prefer the compactor's --archive-retention flag, which drops them from both first."
  type        = number
  default     = null

  validation {
    condition     = var.archive_expiration_days == null || try(var.archive_expiration_days >= 1, false)
    error_message = "archive_expiration_days must be null or at least 1."
  }
}

variable "access_log_bucket" {
  description = "Optional name of an existing bucket that receives S3 server access logs for the FerryMQ bucket. null disables access logging."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Network and load balancer
# ---------------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC in which the load balancer and the gateway tasks run."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "public_subnet_ids" {
  description = "Subnets for the Application Load Balancer (public subnets for an internet-facing ALB, private ones when internal = true). At least two, in different availability zones."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2 && alltrue([for s in var.public_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "public_subnet_ids must list at least two subnet IDs (subnet-...)."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets for the gateway and compactor tasks. They need a route to S3, Secrets Manager, CloudWatch Logs and the image registry (a NAT gateway or VPC endpoints); tasks get no public IP."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 1 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "private_subnet_ids must list at least one subnet ID (subnet-...)."
  }
}

variable "internal" {
  description = "Create an internal ALB (reachable only inside the VPC) instead of an internet-facing one."
  type        = bool
  default     = false
}

variable "certificate_arn" {
  description = "ACM certificate ARN for the HTTPS listener."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "allowed_cidr_blocks" {
  description = "CIDR blocks allowed to reach the load balancer on ports 443 and 80 (80 only redirects to 443)."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.allowed_cidr_blocks) > 0 && alltrue([for c in var.allowed_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "allowed_cidr_blocks must be a non-empty list of CIDR blocks."
  }
}

variable "deletion_protection" {
  description = "Enable deletion protection on the load balancer."
  type        = bool
  default     = true
}

variable "alb_access_logs_bucket" {
  description = "Optional name of an existing bucket (with the ELB log-delivery policy) for ALB access logs. null disables them."
  type        = string
  default     = null
}

variable "web_acl_arn" {
  description = "Optional WAFv2 web ACL ARN to associate with the load balancer."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Gateways
# ---------------------------------------------------------------------------------------------

variable "image" {
  description = "FerryMQ container image, preferably pinned by digest (for example 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ferrymq@sha256:...)."
  type        = string

  validation {
    condition = can(regex("@sha256:[0-9a-f]{64}$", var.image)) || (
      can(regex(":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", element(split("/", var.image), length(split("/", var.image)) - 1)))
      && !endswith(var.image, ":latest")
    )
    error_message = "image must be pinned: repository@sha256:<digest> (preferred) or repository:<tag> with a tag other than latest."
  }
}

variable "container_port" {
  description = "Port the gateway listens on inside the task; the ALB and the other gateways (sequencer forwarding) connect to it."
  type        = number
  default     = 8080

  validation {
    condition     = var.container_port >= 1024 && var.container_port <= 65535
    error_message = "container_port must be between 1024 and 65535 (the container runs as a non-root user)."
  }
}

variable "cpu" {
  description = "Fargate CPU units per gateway task (256, 512, 1024, 2048, 4096, 8192, 16384)."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "memory" {
  description = "Memory (MiB) per gateway task; must be a valid Fargate combination with cpu."
  type        = number
  default     = 2048

  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory must be between 512 and 122880 MiB."
  }
}

variable "min_tasks" {
  description = "Minimum number of gateway tasks (also the initial desired count)."
  type        = number
  default     = 2

  validation {
    condition     = var.min_tasks >= 1
    error_message = "min_tasks must be at least 1."
  }
}

variable "max_tasks" {
  description = "Maximum number of gateway tasks the autoscaler may run."
  type        = number
  default     = 8

  validation {
    condition     = var.max_tasks >= 1 && var.max_tasks <= 100
    error_message = "max_tasks must be between 1 and 100 (and not below min_tasks)."
  }
}

variable "cpu_target_percent" {
  description = "Target average CPU utilisation (percent) for target-tracking autoscaling of the gateways."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "log_level" {
  description = "Tracing filter passed as FERRYMQ_LOG (for example info, or info,gateway=debug)."
  type        = string
  default     = "info"

  validation {
    condition     = length(trimspace(var.log_level)) > 0
    error_message = "log_level must not be empty."
  }
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log group, in days (one of the values CloudWatch Logs accepts)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "jwt_secret_arn" {
  description = "Optional ARN of an existing Secrets Manager secret whose string value is the HS256 JWT secret (FERRYMQ_JWT_SECRET). When null, the module creates one with a random 64-character value."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.jwt_secret_arn))
    error_message = "jwt_secret_arn must be null or a Secrets Manager secret ARN."
  }
}

variable "cluster_secret_arn" {
  description = "Optional ARN of an existing Secrets Manager secret whose string value is the cluster secret (FERRYMQ_CLUSTER_SECRET: signs receipts and gateway-to-gateway calls). When null, the module creates one with a random 64-character value."
  type        = string
  default     = null

  validation {
    condition     = var.cluster_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.cluster_secret_arn))
    error_message = "cluster_secret_arn must be null or a Secrets Manager secret ARN."
  }
}

# ---------------------------------------------------------------------------------------------
# Compactor and analytics
# ---------------------------------------------------------------------------------------------

variable "compactor_schedule" {
  description = "EventBridge Scheduler expression for the compactor task (`ferrymq compact`), for example rate(15 minutes) or cron(0 * * * ? *)."
  type        = string
  default     = "rate(15 minutes)"

  validation {
    condition     = can(regex("^(rate|cron|at)\\(.+\\)$", var.compactor_schedule))
    error_message = "compactor_schedule must be a rate(...), cron(...) or at(...) expression."
  }
}

variable "compactor_cpu" {
  description = "Fargate CPU units for the compactor task."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.compactor_cpu)
    error_message = "compactor_cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "compactor_memory" {
  description = "Memory (MiB) for the compactor task; must be a valid Fargate combination with compactor_cpu."
  type        = number
  default     = 4096

  validation {
    condition     = var.compactor_memory >= 512 && var.compactor_memory <= 122880
    error_message = "compactor_memory must be between 512 and 122880 MiB."
  }
}

variable "archive_topics" {
  description = "Topics to enumerate in the Athena partition projection. Empty (the default) uses injected projection: every query must then name its topic in WHERE (topic = '...'). A non-empty list lets queries span topics without naming them, but a topic missing from the list is invisible to Athena."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for t in var.archive_topics : can(regex("^[A-Za-z0-9._-]{1,127}$", t))])
    error_message = "archive_topics must hold valid topic names (^[A-Za-z0-9._-]{1,127}$)."
  }
}

variable "archive_projection_start_date" {
  description = "First date (YYYY-MM-DD) of the date partition projection for the archive table."
  type        = string
  default     = "2025-01-01"

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.archive_projection_start_date))
    error_message = "archive_projection_start_date must be a date in the form YYYY-MM-DD."
  }
}

variable "create_athena_workgroup" {
  description = "Create an Athena workgroup whose query results go to s3://<bucket>/athena-results/ (outside the FerryMQ prefix, expired after 7 days)."
  type        = bool
  default     = true
}
