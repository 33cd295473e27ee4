# FerryMQ gateways on Kubernetes: Deployment, Service, HorizontalPodAutoscaler,
# PodDisruptionBudget, and the compactor as a CronJob.

resource "random_password" "jwt" {
  count = var.jwt_secret == null ? 1 : 0

  length  = 64
  special = false
}

resource "random_password" "cluster" {
  count = var.cluster_secret == null ? 1 : 0

  length  = 64
  special = false
}

locals {
  namespace = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace

  selector_labels = {
    "app.kubernetes.io/name"     = "ferrymq"
    "app.kubernetes.io/instance" = var.name
  }
  gateway_labels = merge(var.labels, local.selector_labels, {
    "app.kubernetes.io/component"  = "gateway"
    "app.kubernetes.io/managed-by" = "terraform"
  })
  compactor_labels = merge(var.labels, {
    "app.kubernetes.io/name"       = "ferrymq"
    "app.kubernetes.io/instance"   = var.name
    "app.kubernetes.io/component"  = "compactor"
    "app.kubernetes.io/managed-by" = "terraform"
  })
  gateway_selector = merge(local.selector_labels, { "app.kubernetes.io/component" = "gateway" })

  # object_store's S3 client against MinIO: custom endpoint, path-style requests, plain HTTP
  # allowed when the endpoint is http://, and a region to sign with.
  s3_environment = {
    AWS_ENDPOINT                     = trimsuffix(var.s3_endpoint, "/")
    AWS_ALLOW_HTTP                   = startswith(var.s3_endpoint, "http://") ? "true" : "false"
    AWS_REGION                       = var.s3_region
    AWS_VIRTUAL_HOSTED_STYLE_REQUEST = "false"
  }
  store_environment = merge(local.s3_environment, {
    FERRYMQ_STORE = local.store_url
    FERRYMQ_LOG   = var.log_level
  })

  secrets_name = "${var.name}-secrets"
  s3_secret    = "${var.name}-s3-credentials"
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name   = var.namespace
    labels = var.labels
  }
}

resource "kubernetes_service_account_v1" "this" {
  metadata {
    name      = var.name
    namespace = local.namespace
    labels    = merge(var.labels, local.selector_labels)
  }
  automount_service_account_token = false
}

resource "kubernetes_secret_v1" "ferrymq" {
  metadata {
    name      = local.secrets_name
    namespace = local.namespace
    labels    = merge(var.labels, local.selector_labels)
  }
  type = "Opaque"
  data = {
    jwt-secret     = var.jwt_secret != null ? var.jwt_secret : random_password.jwt[0].result
    cluster-secret = var.cluster_secret != null ? var.cluster_secret : random_password.cluster[0].result
  }
}

resource "kubernetes_secret_v1" "s3" {
  metadata {
    name      = local.s3_secret
    namespace = local.namespace
    labels    = merge(var.labels, local.selector_labels)
  }
  type = "Opaque"
  data = {
    access-key-id     = minio_iam_user.gateway.id
    secret-access-key = minio_iam_user.gateway.secret
  }

  depends_on = [minio_iam_user_policy_attachment.gateway]
}

resource "kubernetes_deployment_v1" "gateway" {
  #checkov:skip=CKV_K8S_35:ferrymq takes its JWT secret, cluster secret and S3 keys only from environment variables (or flags); there is no file-based option to mount the Secret as files instead.
  #checkov:skip=CKV_K8S_14:The image is a module input; the image variable's validation refuses an untagged or :latest image, which checkov cannot see through the variable.
  #checkov:skip=CKV_K8S_43:A digest is recommended (docs/deployment.md) but a fixed tag is also accepted, so that release tags work; checkov cannot see the caller's value.
  metadata {
    name      = var.name
    namespace = local.namespace
    labels    = local.gateway_labels
  }

  spec {
    replicas = var.min_replicas

    selector {
      match_labels = local.gateway_selector
    }

    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_surge       = "1"
        max_unavailable = "0"
      }
    }

    template {
      metadata {
        labels = local.gateway_labels
      }

      spec {
        service_account_name             = kubernetes_service_account_v1.this.metadata[0].name
        automount_service_account_token  = false
        termination_grace_period_seconds = 45

        security_context {
          run_as_non_root = true
          run_as_user     = "10001"
          run_as_group    = "10001"
          fs_group        = "10001"
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        dynamic "image_pull_secrets" {
          for_each = var.image_pull_secrets
          content {
            name = image_pull_secrets.value
          }
        }

        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "kubernetes.io/hostname"
          when_unsatisfiable = "ScheduleAnyway"
          label_selector {
            match_labels = local.gateway_selector
          }
        }

        container {
          name              = "gateway"
          image             = var.image
          image_pull_policy = var.image_pull_policy
          args              = ["serve"]

          port {
            name           = "http"
            container_port = var.container_port
            protocol       = "TCP"
          }

          # The pod IP (downward API) is the address the other gateways use to forward to
          # this one when it is the sequencer.
          env {
            name = "POD_IP"
            value_from {
              field_ref {
                field_path = "status.podIP"
              }
            }
          }
          env {
            name  = "FERRYMQ_ADVERTISE_ADDR"
            value = "$(POD_IP):${var.container_port}"
          }
          env {
            name  = "FERRYMQ_LISTEN"
            value = "0.0.0.0:${var.container_port}"
          }

          dynamic "env" {
            for_each = local.store_environment
            content {
              name  = env.key
              value = env.value
            }
          }

          env {
            name = "FERRYMQ_JWT_SECRET"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.ferrymq.metadata[0].name
                key  = "jwt-secret"
              }
            }
          }
          env {
            name = "FERRYMQ_CLUSTER_SECRET"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.ferrymq.metadata[0].name
                key  = "cluster-secret"
              }
            }
          }
          env {
            name = "AWS_ACCESS_KEY_ID"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.s3.metadata[0].name
                key  = "access-key-id"
              }
            }
          }
          env {
            name = "AWS_SECRET_ACCESS_KEY"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.s3.metadata[0].name
                key  = "secret-access-key"
              }
            }
          }

          resources {
            requests = {
              cpu    = var.resources.cpu_request
              memory = var.resources.memory_request
            }
            limits = {
              cpu    = var.resources.cpu_limit
              memory = var.resources.memory_limit
            }
          }

          # Ready once the manifest is caught up and the store answers.
          readiness_probe {
            http_get {
              path = "/readyz"
              port = "http"
            }
            period_seconds    = 5
            timeout_seconds   = 3
            failure_threshold = 3
          }

          # Alive while the process serves HTTP; catching up on start may take a while, so the
          # liveness probe does not depend on the store.
          liveness_probe {
            http_get {
              path = "/healthz"
              port = "http"
            }
            initial_delay_seconds = 10
            period_seconds        = 10
            timeout_seconds       = 3
            failure_threshold     = 6
          }

          security_context {
            allow_privilege_escalation = false
            privileged                 = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            run_as_user                = "10001"
            run_as_group               = "10001"
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }

        volume {
          name = "tmp"
          empty_dir {
            size_limit = "256Mi"
          }
        }
      }
    }
  }

  # The HorizontalPodAutoscaler owns the replica count after creation.
  lifecycle {
    ignore_changes = [spec[0].replicas]
  }
}

resource "kubernetes_service_v1" "gateway" {
  metadata {
    name      = var.name
    namespace = local.namespace
    labels    = local.gateway_labels
  }

  spec {
    type     = var.service_type
    selector = local.gateway_selector

    port {
      name        = "http"
      port        = var.container_port
      target_port = "http"
      protocol    = "TCP"
    }
  }
}

resource "kubernetes_horizontal_pod_autoscaler_v2" "gateway" {
  metadata {
    name      = var.name
    namespace = local.namespace
    labels    = local.gateway_labels
  }

  spec {
    min_replicas = var.min_replicas
    max_replicas = var.max_replicas

    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = kubernetes_deployment_v1.gateway.metadata[0].name
    }

    metric {
      type = "Resource"
      resource {
        name = "cpu"
        target {
          type                = "Utilization"
          average_utilization = var.cpu_target_percent
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.min_replicas <= var.max_replicas
      error_message = "min_replicas must not exceed max_replicas."
    }
  }
}

resource "kubernetes_pod_disruption_budget_v1" "gateway" {
  metadata {
    name      = var.name
    namespace = local.namespace
    labels    = local.gateway_labels
  }

  spec {
    max_unavailable = "1"

    selector {
      match_labels = local.gateway_selector
    }
  }
}

resource "kubernetes_cron_job_v1" "compactor" {
  metadata {
    name      = "${var.name}-compactor"
    namespace = local.namespace
    labels    = local.compactor_labels
  }

  spec {
    schedule                      = var.compactor_schedule
    concurrency_policy            = "Forbid"
    starting_deadline_seconds     = 300
    successful_jobs_history_limit = 3
    failed_jobs_history_limit     = 3

    job_template {
      metadata {
        labels = local.compactor_labels
      }

      spec {
        backoff_limit              = 1
        ttl_seconds_after_finished = 86400

        template {
          metadata {
            labels = local.compactor_labels
          }

          spec {
            service_account_name            = kubernetes_service_account_v1.this.metadata[0].name
            automount_service_account_token = false
            restart_policy                  = "Never"

            security_context {
              run_as_non_root = true
              run_as_user     = "10001"
              run_as_group    = "10001"
              fs_group        = "10001"
              seccomp_profile {
                type = "RuntimeDefault"
              }
            }

            dynamic "image_pull_secrets" {
              for_each = var.image_pull_secrets
              content {
                name = image_pull_secrets.value
              }
            }

            container {
              name              = "compactor"
              image             = var.image
              image_pull_policy = var.image_pull_policy
              args              = ["compact"]

              dynamic "env" {
                for_each = local.store_environment
                content {
                  name  = env.key
                  value = env.value
                }
              }

              env {
                name = "FERRYMQ_CLUSTER_SECRET"
                value_from {
                  secret_key_ref {
                    name = kubernetes_secret_v1.ferrymq.metadata[0].name
                    key  = "cluster-secret"
                  }
                }
              }
              env {
                name = "AWS_ACCESS_KEY_ID"
                value_from {
                  secret_key_ref {
                    name = kubernetes_secret_v1.s3.metadata[0].name
                    key  = "access-key-id"
                  }
                }
              }
              env {
                name = "AWS_SECRET_ACCESS_KEY"
                value_from {
                  secret_key_ref {
                    name = kubernetes_secret_v1.s3.metadata[0].name
                    key  = "secret-access-key"
                  }
                }
              }

              resources {
                requests = {
                  cpu    = var.compactor_resources.cpu_request
                  memory = var.compactor_resources.memory_request
                }
                limits = {
                  cpu    = var.compactor_resources.cpu_limit
                  memory = var.compactor_resources.memory_limit
                }
              }

              security_context {
                allow_privilege_escalation = false
                privileged                 = false
                read_only_root_filesystem  = true
                run_as_non_root            = true
                run_as_user                = "10001"
                run_as_group               = "10001"
                capabilities {
                  drop = ["ALL"]
                }
              }

              volume_mount {
                name       = "tmp"
                mount_path = "/tmp"
              }
            }

            volume {
              name = "tmp"
              empty_dir {
                size_limit = "1Gi"
              }
            }
          }
        }
      }
    }
  }
}
