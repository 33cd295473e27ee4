# ---------------------------------------------------------------------------------------------
# Naming
# ---------------------------------------------------------------------------------------------

variable "name" {
  description = "Name of the Kubernetes objects (Deployment, Service, CronJob, ...) and prefix of the MinIO user and policy."
  type        = string
  default     = "ferrymq"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label of at most 40 characters: lowercase letters, digits and '-', starting with a letter."
  }
}

variable "namespace" {
  description = "Kubernetes namespace for the gateways and the compactor. Must not be \"default\"."
  type        = string
  default     = "ferrymq"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.namespace)) && var.namespace != "default"
    error_message = "namespace must be a DNS label other than \"default\"."
  }
}

variable "create_namespace" {
  description = "Create the namespace. Set false when it already exists."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Extra labels added to every Kubernetes object."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# MinIO
# ---------------------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the MinIO bucket to create."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'."
  }
}

variable "bucket_prefix" {
  description = "Key prefix inside the bucket under which FerryMQ keeps everything; the MinIO user's policy allows nothing outside it."
  type        = string
  default     = "ferrymq"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.bucket_prefix))
    error_message = "bucket_prefix must be one or more path segments of letters, digits, '.', '_' and '-', separated by single '/', without a leading or trailing '/'."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete the bucket even when it still holds objects."
  type        = bool
  default     = false
}

variable "archive_expiration_days" {
  description = "Optional: expire Parquet archive files (<prefix>/archive/) after this many days with a MinIO lifecycle (ILM) rule. null keeps them forever. A backstop only: files deleted this way stay in the catalogue and the Iceberg table, whose readers then fail on them; prefer the compactor's --archive-retention flag, which drops them from both first."
  type        = number
  default     = null

  validation {
    condition     = var.archive_expiration_days == null || try(var.archive_expiration_days >= 1, false)
    error_message = "archive_expiration_days must be null or at least 1."
  }
}

variable "minio_user" {
  description = "Name (and access key) of the MinIO user created for the gateways and the compactor. Must be unique on the MinIO server."
  type        = string
  default     = "ferrymq-gateway"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{3,20}$", var.minio_user))
    error_message = "minio_user must be 3-20 characters of letters, digits, '.', '_' and '-' (MinIO's access key limits)."
  }
}

variable "s3_endpoint" {
  description = "MinIO endpoint URL as the pods reach it (passed as AWS_ENDPOINT), for example http://minio.minio.svc.cluster.local:9000. Plain http:// is allowed (AWS_ALLOW_HTTP is set for it); requests are path-style."
  type        = string

  validation {
    condition     = can(regex("^https?://[^/]+/?$", var.s3_endpoint))
    error_message = "s3_endpoint must be an http:// or https:// URL with no path, for example http://minio.minio.svc:9000."
  }
}

variable "s3_region" {
  description = "Region name the S3 client signs with (AWS_REGION). MinIO's default is us-east-1."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = length(var.s3_region) > 0
    error_message = "s3_region must not be empty."
  }
}

# ---------------------------------------------------------------------------------------------
# Gateways on Kubernetes
# ---------------------------------------------------------------------------------------------

variable "image" {
  description = "FerryMQ container image, preferably pinned by digest (registry.example.com/ferrymq@sha256:...)."
  type        = string

  validation {
    condition = can(regex("@sha256:[0-9a-f]{64}$", var.image)) || (
      can(regex(":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", element(split("/", var.image), length(split("/", var.image)) - 1)))
      && !endswith(var.image, ":latest")
    )
    error_message = "image must be pinned: repository@sha256:<digest> (preferred) or repository:<tag> with a tag other than latest."
  }
}

variable "image_pull_policy" {
  description = "Image pull policy of the gateway and compactor containers."
  type        = string
  default     = "Always"

  validation {
    condition     = contains(["Always", "IfNotPresent", "Never"], var.image_pull_policy)
    error_message = "image_pull_policy must be Always, IfNotPresent or Never."
  }
}

variable "image_pull_secrets" {
  description = "Names of existing image pull secrets in the namespace."
  type        = list(string)
  default     = []
}

variable "container_port" {
  description = "Port the gateway listens on; the Service targets it and the gateways reach each other on it."
  type        = number
  default     = 8080

  validation {
    condition     = var.container_port >= 1024 && var.container_port <= 65535
    error_message = "container_port must be between 1024 and 65535 (the container runs as a non-root user)."
  }
}

variable "service_type" {
  description = "Type of the Kubernetes Service in front of the gateways (ClusterIP, NodePort or LoadBalancer). Put TLS in front of it (an Ingress or a TLS-terminating load balancer) for clients outside the cluster."
  type        = string
  default     = "ClusterIP"

  validation {
    condition     = contains(["ClusterIP", "NodePort", "LoadBalancer"], var.service_type)
    error_message = "service_type must be ClusterIP, NodePort or LoadBalancer."
  }
}

variable "min_replicas" {
  description = "Minimum number of gateway pods (also the initial replica count)."
  type        = number
  default     = 2

  validation {
    condition     = var.min_replicas >= 1
    error_message = "min_replicas must be at least 1."
  }
}

variable "max_replicas" {
  description = "Maximum number of gateway pods the HorizontalPodAutoscaler may run."
  type        = number
  default     = 6

  validation {
    condition     = var.max_replicas >= 1 && var.max_replicas <= 100
    error_message = "max_replicas must be between 1 and 100 (and not below min_replicas)."
  }
}

variable "cpu_target_percent" {
  description = "Target average CPU utilisation (percent of the request) for the HorizontalPodAutoscaler."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "resources" {
  description = "CPU and memory requests and limits of a gateway pod."
  type = object({
    cpu_request    = string
    memory_request = string
    cpu_limit      = string
    memory_limit   = string
  })
  default = {
    cpu_request    = "500m"
    memory_request = "512Mi"
    cpu_limit      = "2"
    memory_limit   = "2Gi"
  }
}

variable "compactor_resources" {
  description = "CPU and memory requests and limits of the compactor pod."
  type = object({
    cpu_request    = string
    memory_request = string
    cpu_limit      = string
    memory_limit   = string
  })
  default = {
    cpu_request    = "500m"
    memory_request = "1Gi"
    cpu_limit      = "2"
    memory_limit   = "4Gi"
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

variable "jwt_secret" {
  description = "HS256 JWT secret (FERRYMQ_JWT_SECRET). null generates a random 64-character one (kept in the Terraform state)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.jwt_secret == null || try(length(var.jwt_secret) >= 32, false)
    error_message = "jwt_secret must be null or at least 32 characters."
  }
}

variable "cluster_secret" {
  description = "Cluster secret (FERRYMQ_CLUSTER_SECRET: signs receipts and gateway-to-gateway calls). null generates a random 64-character one."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.cluster_secret == null || try(length(var.cluster_secret) >= 32, false)
    error_message = "cluster_secret must be null or at least 32 characters."
  }
}

variable "compactor_schedule" {
  description = "Cron schedule (UTC, Kubernetes CronJob syntax) of the compactor (`ferrymq compact`)."
  type        = string
  default     = "*/15 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.compactor_schedule))) == 5 || can(regex("^@(hourly|daily|weekly|monthly|yearly|annually|midnight)$", var.compactor_schedule))
    error_message = "compactor_schedule must be a five-field cron expression or a macro such as @hourly."
  }
}
