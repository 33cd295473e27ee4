variable "minio_server" {
  description = "MinIO API host:port as reachable from where Terraform runs (for example localhost:9000 through a port-forward)."
  type        = string
}

variable "minio_user" {
  description = "MinIO admin user (root user or one allowed to create buckets, users and policies)."
  type        = string
}

variable "minio_password" {
  description = "Password of minio_user."
  type        = string
  sensitive   = true
}

variable "minio_ssl" {
  description = "Whether Terraform talks to MinIO over HTTPS."
  type        = bool
  default     = false
}

variable "kubeconfig" {
  description = "Path to the kubeconfig file."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "kubeconfig context to use (null: the current context)."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace to create for FerryMQ."
  type        = string
  default     = "ferrymq"
}

variable "bucket_name" {
  description = "MinIO bucket to create."
  type        = string
  default     = "ferrymq"
}

variable "s3_endpoint" {
  description = "MinIO endpoint as the pods reach it, e.g. http://minio.minio.svc.cluster.local:9000."
  type        = string
}

variable "image" {
  description = "FerryMQ image, e.g. registry.example.com/ferrymq:0.1.0."
  type        = string
}
