{{- define "mtls-operator.name" -}}mtls-operator{{- end -}}

{{- define "mtls-operator.fullname" -}}
{{- if contains "mtls-operator" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-mtls-operator" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "mtls-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "mtls-operator.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{- define "mtls-operator.selectorLabels" -}}
app.kubernetes.io/name: mtls-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mtls-operator.labels" -}}
{{ include "mtls-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "mtls-operator.rules" -}}
{{- /* Exactly what the operator uses, proven from the audit log (tests/e2e/test_least_privilege.py). */}}
- apiGroups: ["mtls.dev"]
  resources: ["mtlscertificates"]
  # get: the certificate an MtlsRevocation names (any shard's); patch: the revokeOnDelete finalizer
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["mtls.dev"]
  resources: ["mtlscertificates/status"]
  verbs: ["patch"]
- apiGroups: ["mtls.dev"]
  resources: ["mtlsrevocations"]
  # patch: the serial and issuer it resolved to (metadata annotations); create: an issuer's revokeOnDelete and
  # revokeSuperseded
  verbs: ["list", "watch", "patch", "create"]
- apiGroups: ["mtls.dev"]
  resources: ["mtlsrevocations/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["mtls.dev"]
  resources: ["mtlsissuers"]
  verbs: ["list", "watch"]
- apiGroups: ["mtls.dev"]
  resources: ["mtlsissuers/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]  # spec.publishCA (CA certificates, CRLs); caFrom; an MtlsIssuer's CRL
{{- if .Values.workloadRollout.enabled }}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["list", "patch"]  # workloadRollout: the pod-template annotation that rolls an opted-in workload
{{- end }}
{{- end -}}


{{- define "mtls-operator.clusterIssuerNamespace" -}}
{{- default .Release.Namespace .Values.issuers.clusterIssuerNamespace -}}
{{- end -}}

{{- /* Cluster-scoped, whatever the watch scope: ClusterMtlsIssuers, and namespaces' labels for their selectors. */}}
{{- define "mtls-operator.clusterRules" -}}
- apiGroups: ["mtls.dev"]
  resources: ["clustermtlsissuers"]
  verbs: ["list", "watch"]
- apiGroups: ["mtls.dev"]
  resources: ["clustermtlsissuers/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
- apiGroups: ["authentication.k8s.io"]
  resources: ["selfsubjectreviews"]
  verbs: ["create"]  # our own name, the requestedBy of the revocations we make (also in system:basic-user)
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]  # does a certificate's requester hold `use` on the cluster issuer (at every issuance)?
{{- if .Values.issuers.admissionPolicy.enabled }}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingadmissionpolicies", "validatingadmissionpolicybindings"]
  resourceNames: [{{ include "mtls-operator.usePolicyName" . | quote }}]
  verbs: ["get"]  # cluster issuers sign only while their `use` policy is in force (--cluster-issuer-use-policy)
{{- end }}
{{- end -}}

{{- /* The ValidatingAdmissionPolicy (and binding) that checks RBAC verb `use` on ClusterMtlsIssuers. */ -}}
{{- define "mtls-operator.usePolicyName" -}}
{{ include "mtls-operator.fullname" . }}-cluster-issuer-use
{{- end -}}
