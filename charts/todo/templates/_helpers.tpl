{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "todo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "todo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "todo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: the standard app.kubernetes.io set. */}}
{{- define "todo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "todo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "todo.labels" -}}
helm.sh/chart: {{ include "todo.chart" . }}
{{ include "todo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: token-broker
{{- end }}

{{/* The `helm test` pod's: its own name, so that no selector of the release (Service, PDB,
NetworkPolicy, Deployment) takes it for an app pod. */}}
{{- define "todo.testSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "todo.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "todo.testLabels" -}}
helm.sh/chart: {{ include "todo.chart" . }}
{{ include "todo.testSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: token-broker
app.kubernetes.io/component: test
{{- end }}

{{- define "todo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "todo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "todo.podIdentityName" -}}
{{- default (include "todo.fullname" .) .Values.identity.podIdentity.name }}
{{- end }}

{{- define "todo.podIdentitySelector" -}}
{{- default (include "todo.fullname" .) .Values.identity.podIdentity.selector }}
{{- end }}

{{- define "todo.csrfSecretName" -}}
{{- default (printf "%s-csrf" (include "todo.fullname" .)) .Values.app.csrf.existingSecret }}
{{- end }}

{{- define "todo.csrfEnabled" -}}
{{- if or .Values.app.csrf.existingSecret .Values.app.csrf.create }}true{{ end }}
{{- end }}

{{/* image: REGISTRY/REPOSITORY:TAG (the tag defaulting to the chart's appVersion), or
@DIGEST instead of :TAG. REGISTRY is the image's registry, else global.imageRegistry; a
repository that names its own host (myacr.azurecr.io/todo-app, localhost/todo-app) takes none.
Without either the render fails: the chart's images are on no public registry. Called with
(dict "image" … "root" . "name" "app"). */}}
{{- define "todo.image" -}}
{{- $global := .root.Values.global | default dict }}
{{- $registry := .image.registry | default $global.imageRegistry | default "" | trimSuffix "/" }}
{{- $repository := .image.repository }}
{{- $ref := $repository }}
{{- if not (regexMatch "^(localhost|[^/]*[.:][^/]*)/" $repository) }}
{{- if not $registry }}
{{- fail (printf "%s.image: no registry for %s; these images are on no public registry: push the ones built from Dockerfile.app and Dockerfile.sidecar to yours (charts/todo/README.md, Images) and set global.imageRegistry (e.g. myacr.azurecr.io) or %s.image.registry" .name $repository .name) }}
{{- end }}
{{- $ref = printf "%s/%s" $registry $repository }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $ref .image.digest }}
{{- else }}
{{- printf "%s:%s" $ref (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* Database ----------------------------------------------------------------------------- */}}

{{- define "todo.db.auth" -}}
{{- $db := .Values.database }}
{{- if $db.auth }}{{ $db.auth }}
{{- else if eq $db.type "sqlserver" }}access-token
{{- else if eq $db.type "postgresql" }}password
{{- else }}none
{{- end }}
{{- end }}

{{/* What differs per Azure cloud (tb/cloud.hpp has the same table for the programs). */}}
{{- define "todo.cloud" -}}
{{- $clouds := dict
  "AzurePublicCloud" (dict "authority" "https://login.microsoftonline.com/" "suffix" "database.windows.net")
  "AzureUSGovernment" (dict "authority" "https://login.microsoftonline.us/" "suffix" "database.usgovcloudapi.net")
  "AzureChinaCloud" (dict "authority" "https://login.chinacloudapi.cn/" "suffix" "database.chinacloudapi.cn") }}
{{- index $clouds (.Values.identity.cloud | default "AzurePublicCloud") | toJson }}
{{- end }}

{{- define "todo.authorityHost" -}}
{{- .Values.identity.workloadIdentity.authorityHost | default (include "todo.cloud" . | fromJson).authority }}
{{- end }}

{{- define "todo.db.tokenResource" -}}
{{- $db := .Values.database }}
{{- $suffix := (include "todo.cloud" . | fromJson).suffix }}
{{- if $db.tokenResource }}{{ $db.tokenResource }}
{{- else if eq $db.type "postgresql" }}https://ossrdbms-aad.{{ $suffix }}
{{- else }}https://{{ $suffix }}/
{{- end }}
{{- end }}

{{/* The ODBC connection string: where and who, never a credential. */}}
{{- define "todo.db.connectionString" -}}
{{- $db := .Values.database }}
{{- if $db.connectionString }}
{{- $db.connectionString }}
{{- else if eq $db.type "sqlserver" }}
{{- $driver := default "ODBC Driver 18 for SQL Server" $db.driver }}
{{- printf "Driver={%s};Server=tcp:%s,%v;Database=%s;Encrypt=yes;TrustServerCertificate=no;%s" $driver (required "database.server is required for database.type=sqlserver" $db.server) (default 1433 $db.port) (required "database.name is required" $db.name) $db.extraOptions }}
{{- else if eq $db.type "postgresql" }}
{{- $driver := default "PostgreSQL Unicode" $db.driver }}
{{- printf "Driver={%s};Server=%s;Port=%v;Database=%s;Uid=%s;sslmode=require;%s" $driver (required "database.server is required for database.type=postgresql" $db.server) (default 5432 $db.port) (required "database.name is required" $db.name) (required "database.user (the identity's role name) is required for database.type=postgresql" $db.user) $db.extraOptions }}
{{- else }}
{{- $driver := default "SQLite3" $db.driver }}
{{- printf "Driver=%s;Database=%s;%s" $driver $db.sqlite.path $db.extraOptions }}
{{- end }}
{{- end }}

{{/* Broker ------------------------------------------------------------------------------- */}}

{{- define "todo.broker.socket" -}}
{{- printf "%s/broker.sock" (trimSuffix "/" .Values.broker.socketDir) }}
{{- end }}

{{- define "todo.broker.source" -}}
{{- if .Values.devEmulator.enabled }}imds
{{- else if eq .Values.identity.mode "workloadIdentity" }}workload-identity
{{- else }}imds
{{- end }}
{{- end }}

{{/* Resources the broker fetches at start: the database's (when the app uses a token) + extra. */}}
{{- define "todo.broker.prefetch" -}}
{{- $list := list }}
{{- if ne (include "todo.db.auth" .) "none" }}
{{- $list = append $list (include "todo.db.tokenResource" .) }}
{{- end }}
{{- range .Values.broker.prefetch }}
{{- if not (has . $list) }}{{ $list = append $list . }}{{ end }}
{{- end }}
{{- join "," $list }}
{{- end }}

{{/* File sinks (broker.sinks) ---------------------------------------------------------- */}}

{{- define "todo.broker.sinkDir" -}}
{{- trimSuffix "/" .Values.broker.sinkDir }}
{{- end }}

{{/* The volume of the sink files: written by the broker, read by extraContainers. */}}
{{- define "todo.broker.sinkVolume" -}}token-sink{{- end }}

{{/* A sink's format, raw unless given. Called with the sink. */}}
{{- define "todo.broker.sinkFormat" -}}
{{- .format | default "raw" }}
{{- end }}

{{/* A mode as the broker prints it: "640" -> "0640". Called with the mode string. */}}
{{- define "todo.broker.octal" -}}
{{- if eq (len .) 3 }}0{{ end }}{{ . }}
{{- end }}

{{/* One --sink value: resource=R[,client_id=ID],path=P[,mode=M],format=F[,pghost=H][,pgport=N]
[,pgdatabase=D][,pguser=U]. Without clientId the broker gives the sink its default identity
(--client-id, or AZURE_CLIENT_ID in workloadIdentity mode), as it does a request that names
none; without mode, its default for the format (0640, pgpass 0600). Called with
(dict "sink" … "root" .). */}}
{{- define "todo.broker.sink" -}}
{{- $s := .sink }}
{{- $items := list (printf "resource=%s" $s.resource) }}
{{- with $s.clientId }}
{{- $items = append $items (printf "client_id=%s" .) }}
{{- end }}
{{- $items = append $items (printf "path=%s/%s" (include "todo.broker.sinkDir" .root) $s.file) }}
{{- with $s.mode }}
{{- $items = append $items (printf "mode=%s" (include "todo.broker.octal" .)) }}
{{- end }}
{{- $items = append $items (printf "format=%s" (include "todo.broker.sinkFormat" $s)) }}
{{- /* In the order of the pgpass line's fields. */}}
{{- range list (list "pgHost" "pghost") (list "pgPort" "pgport") (list "pgDatabase" "pgdatabase") (list "pgUser" "pguser") }}
{{- $value := index $s (index . 0) }}
{{- if not (kindIs "invalid" $value) }}
{{- $items = append $items (printf "%s=%v" (index . 1) $value) }}
{{- end }}
{{- end }}
{{- join "," $items }}
{{- end }}

{{/* extraContainers as given, each with the sink volume read-only at broker.sinkDir when there
are sinks (added to its own volumeMounts; a mount of its own of the volume, with a subPath say,
is kept but made read-only: only the broker writes there). A YAML list, or nothing. */}}
{{- define "todo.containers.extra" -}}
{{- $sinkDir := include "todo.broker.sinkDir" . }}
{{- $volume := include "todo.broker.sinkVolume" . }}
{{- $out := list }}
{{- range $i, $given := .Values.extraContainers }}
{{- $c := deepCopy $given }}
{{- if $.Values.broker.sinks }}
{{- $mounts := $c.volumeMounts | default list }}
{{- $own := false }}
{{- range $mounts }}
{{- if eq .name $volume }}
{{- $_ := set . "readOnly" true }}
{{- $own = true }}
{{- else if eq (trimSuffix "/" .mountPath) $sinkDir }}
{{- fail (printf "extraContainers[%d] (%s) mounts volume %s at %s, where the chart mounts the sink files (broker.sinkDir): mount it elsewhere, or set broker.sinkDir to another directory" $i $c.name .name .mountPath) }}
{{- end }}
{{- end }}
{{- if not $own }}
{{- $_ := set $c "volumeMounts" (append $mounts (dict "name" $volume "mountPath" $sinkDir "readOnly" true)) }}
{{- end }}
{{- end }}
{{- $out = append $out $c }}
{{- end }}
{{- with $out }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* The pod's container names the Azure Workload Identity webhook must skip: all but the
broker's, so that only the broker gets the federated token and the AZURE_* variables. */}}
{{- define "todo.wiSkipContainers" -}}
{{- $names := list "todo-app" }}
{{- if .Values.devEmulator.enabled }}
{{- $names = append $names "imds-emulator" }}
{{- end }}
{{- range .Values.extraContainers }}
{{- $names = append $names .name }}
{{- end }}
{{- join ";" $names }}
{{- end }}

{{- define "todo.broker.needsAdminOnService" -}}
{{- if or .Values.service.exposeBrokerAdmin .Values.serviceMonitor.enabled }}true{{ end }}
{{- end }}

{{/* Checks the schema cannot express. */}}
{{- define "todo.validate" -}}
{{- $mode := .Values.identity.mode }}
{{- if and .Values.broker.nativeSidecar (semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "broker.nativeSidecar=true needs Kubernetes 1.29 or newer (native sidecar containers); this cluster is %s: set broker.nativeSidecar=false" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and (eq $mode "workloadIdentity") (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "identity.mode=workloadIdentity needs a ServiceAccount annotated with the client ID: set serviceAccount.create=true, or serviceAccount.name to one you annotated yourself" }}
{{- end }}
{{- range $key := list "connectionString" "extraOptions" }}
{{- if regexMatch "(?i)(^|;)\\s*(pwd|password)\\s*=" (index $.Values.database $key) }}
{{- fail (printf "database.%s must not contain a credential (PWD= or Password=): the app logs in with tokens from token-broker, so no database secret belongs in the values" $key) }}
{{- end }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (eq .Values.database.type "sqlite") }}
{{- fail "database.type=sqlite keeps the data in each pod's own emptyDir: use replicaCount=1, or sqlserver/postgresql" }}
{{- end }}
{{- $sinkDir := include "todo.broker.sinkDir" . }}
{{- if and .Values.broker.sinks (eq $sinkDir (trimSuffix "/" .Values.broker.socketDir)) }}
{{- fail (printf "broker.sinkDir=%s is broker.socketDir: the sink files need a directory of their own (a volume of its own, read-only in extraContainers); set broker.sinkDir to another one, e.g. /var/run/token-sink" .Values.broker.sinkDir) }}
{{- end }}
{{- $files := dict }}
{{- range $i, $s := .Values.broker.sinks }}
{{- if hasKey $files $s.file }}
{{- fail (printf "broker.sinks[%d].file and broker.sinks[%v].file are both %q: the two sinks would write the same file %s/%s (the broker refuses that); give each sink its own file name" (index $files $s.file) $i $s.file $sinkDir $s.file) }}
{{- end }}
{{- $_ := set $files $s.file $i }}
{{- if ne (include "todo.broker.sinkFormat" $s) "pgpass" }}
{{- range $key := list "pgHost" "pgPort" "pgDatabase" "pgUser" }}
{{- if not (kindIs "invalid" (index $s $key)) }}
{{- fail (printf "broker.sinks[%d].%s is a field of a pgpass line, and this sink's format is %s: set broker.sinks[%d].format=pgpass, or remove %s" $i $key (include "todo.broker.sinkFormat" $s) $i $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (eq (include "todo.broker.sinkFormat" $s) "pgpass") $s.mode (not (hasSuffix "00" $s.mode)) }}
{{- fail (printf "broker.sinks[%d].mode=%q with format pgpass: libpq ignores a password file that group or others may read (\"has group or world access\") and asks for a password instead, so the broker refuses it. Leave mode unset (0600) or use 0400 and run the program that reads %s as the broker's uid (broker.securityContext.runAsUser); or, for a reader in the pod's group, use format raw (or json) with mode 0640 and hand it the token as the password (PGPASSWORD=\"$(cat FILE)\")" $i $s.mode $s.file) }}
{{- end }}
{{- end }}
{{- $names := list "todo-app" "token-broker" "imds-emulator" }}
{{- range $i, $c := .Values.extraContainers }}
{{- if has $c.name $names }}
{{- fail (printf "extraContainers[%d].name=%s is taken (by the chart's own containers, or an earlier extraContainers entry): give it another name" $i $c.name) }}
{{- end }}
{{- $names = append $names $c.name }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.networkPolicy.enabled (not .Values.networkPolicy.adminFrom) }}
{{- fail "serviceMonitor.enabled with networkPolicy.enabled needs networkPolicy.adminFrom: the policy lets nobody reach the broker's admin port, so Prometheus could not scrape its /metrics; set networkPolicy.adminFrom to Prometheus's pods, e.g. [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]" }}
{{- end }}
{{- end }}
