{{/*
Names. The full name is the release name when it already says expsync
(`helm install expsync ...`), else <release>-expsync; 63 characters at most.
*/}}
{{- define "expsync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "expsync.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "expsync.labels" -}}
{{ include "expsync.commonLabels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Labels of everything the chart makes, without the component. */}}
{{- define "expsync.commonLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: expsync
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The controller's ServiceAccount. */}}
{{- define "expsync.serviceAccountName" -}}
{{- default (include "expsync.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The namespace watched in namespace mode (the release's by default). */}}
{{- define "expsync.watchNamespace" -}}
{{- default .Release.Namespace .Values.watch.namespace -}}
{{- end -}}

{{/* The controller's image, by digest only. */}}
{{- define "expsync.image" -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- end -}}

{{- define "expsync.runnerImage" -}}
{{- default (include "expsync.image" .) .Values.runnerImage -}}
{{- end -}}

{{/* Namespaces that get the runs' ServiceAccount. */}}
{{- define "expsync.runsNamespaces" -}}
{{- if eq .Values.watch.mode "namespace" -}}
{{- list (include "expsync.watchNamespace" .) | toJson -}}
{{- else -}}
{{- .Values.runs.namespaces | toJson -}}
{{- end -}}
{{- end -}}

{{/*
The controller's RBAC rules as controller-gen generated them from the
+kubebuilder:rbac markers of internal/controller (files/rbac/role.yaml, a
copy `make generate` keeps current). "watched": the ClusterRole's rules,
needed wherever ExperimentRepositories live; "own": the Role's rules, needed
in the controller's own namespace only (leader election).
*/}}
{{- define "expsync.rules" -}}
{{- $kind := ternary "ClusterRole" "Role" (eq .which "watched") -}}
{{- range $doc := regexSplit "(?m)^---\\s*$" (.root.Files.Get "files/rbac/role.yaml") -1 -}}
{{- $obj := fromYaml $doc -}}
{{- if and $obj (eq (get $obj "kind") $kind) -}}
{{- toYaml (get $obj "rules") -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Checks a JSON schema cannot say (they span several values), each failing
the install with what to change.
*/}}
{{- define "expsync.validate" -}}
{{- if .Values.image.tag -}}
{{- fail (printf "image.tag %q is not supported: the controller image is pinned by digest, never by a tag that can move under a running deployment; set image.digest=sha256:<64 hex> (`crane digest %s:%s` prints it) and remove image.tag" .Values.image.tag .Values.image.repository .Values.image.tag) -}}
{{- end -}}
{{- if and .Values.image.digest (not (regexMatch "^sha256:[0-9a-f]{64}$" .Values.image.digest)) -}}
{{- fail (printf "image.digest %q is not a digest: give sha256:<64 lowercase hex> (`crane digest IMAGE:TAG` prints it), never a tag" .Values.image.digest) -}}
{{- end -}}
{{- if and .Values.runnerImage (not (regexMatch "^[^\\s@]+@sha256:[0-9a-f]{64}$" .Values.runnerImage)) -}}
{{- fail (printf "runnerImage %q is not pinned by digest: give REPOSITORY@sha256:<64 hex> (the run pods' init container runs it, and the attestations name it), or leave it empty for image.repository@image.digest" .Values.runnerImage) -}}
{{- end -}}
{{- if not .Values.image.digest -}}
{{- fail "image.digest is required: the controller image is pinned by digest (sha256:<64 hex>), never by a tag that can move; look it up with `crane digest IMAGE:TAG` or `docker buildx imagetools inspect IMAGE:TAG` and pass --set image.digest=sha256:..." -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicas is %d but leaderElection.enabled is false: two controllers without leader election would both reconcile every repository; set leaderElection.enabled=true (standbys take over through a Lease) or replicas=1" (int .Values.replicas)) -}}
{{- end -}}
{{- $watch := include "expsync.watchNamespace" . -}}
{{- if and (or .Values.store.claims .Values.store.create.enabled) (eq .Values.watch.mode "namespace") (ne $watch .Release.Namespace) -}}
{{- fail (printf "store.claims and store.create mount claims of the release namespace %q, but the controller watches namespace %q, whose repositories name claims of %q: install the release into %q, or use store.volume (one shared volume laid out <namespace>/<claim>/)" .Release.Namespace $watch $watch $watch) -}}
{{- end -}}
{{- if and .Values.store.claims .Values.store.volume -}}
{{- fail "store.claims and store.volume both mount at store.root: choose one (claims of the release namespace, or one shared volume for every namespace)" -}}
{{- end -}}
{{- if and .Values.store.create.enabled (has .Values.store.create.name .Values.store.claims) -}}
{{- fail (printf "store.create.name %q is also listed in store.claims: the created claim is mounted already, remove it from store.claims" .Values.store.create.name) -}}
{{- end -}}
{{- if and .Values.signing.secret.create (or (not .Values.signing.secret.key) (not .Values.signing.secret.password)) -}}
{{- fail "signing.secret.create needs signing.secret.key (a cosign encrypted private key: --set-file signing.secret.key=cosign.key) and signing.secret.password; or leave create false and run `cosign generate-key-pair k8s://NAMESPACE/NAME`" -}}
{{- end -}}
{{- if and .Values.signing.secret.create (not (contains "ENCRYPTED" .Values.signing.secret.key)) -}}
{{- fail "signing.secret.key is not a cosign encrypted private key (-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----): generate one with `expsync keygen` or `cosign generate-key-pair`; an unencrypted key does not belong in Helm values" -}}
{{- end -}}
{{- if and (eq .Values.watch.mode "cluster") .Values.watch.namespace -}}
{{- fail (printf "watch.namespace %q is set but watch.mode is cluster (every namespace): set watch.mode=namespace to watch only %q, or remove watch.namespace" .Values.watch.namespace .Values.watch.namespace) -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor selects the metrics Service" -}}
{{- end -}}
{{- if and (lt (int .Values.controller.kubeAPIBurst) (int (ceil .Values.controller.kubeAPIQPS))) -}}
{{- fail (printf "controller.kubeAPIBurst (%v) is below controller.kubeAPIQPS (%v): the burst is the most requests at once and must be at least the rate" .Values.controller.kubeAPIBurst .Values.controller.kubeAPIQPS) -}}
{{- end -}}
{{- end -}}
