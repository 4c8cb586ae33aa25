{{/* The pod's containers. deployment.yaml puts the broker (and the emulator) among the init
containers (native sidecars, restartPolicy: Always) or among the regular containers. */}}

{{- define "todo.container.app" -}}
{{- $auth := include "todo.db.auth" . }}
- name: todo-app
  image: {{ include "todo.image" (dict "image" .Values.app.image "root" . "name" "app") | quote }}
  imagePullPolicy: {{ .Values.app.image.pullPolicy }}
  env:
    - name: TODO_LISTEN
      value: {{ printf "0.0.0.0:%v" .Values.app.port | quote }}
    # Where and who, never a credential: the password is a token from the broker.
    - name: TODO_DB_CONNECTION_STRING
      value: {{ include "todo.db.connectionString" . | quote }}
    - name: TODO_DB_AUTH
      value: {{ $auth | quote }}
    - name: TODO_CLOUD
      value: {{ .Values.identity.cloud | quote }}
    {{- if ne $auth "none" }}
    - name: TODO_DB_TOKEN_RESOURCE
      value: {{ include "todo.db.tokenResource" . | quote }}
    {{- end }}
    {{- with .Values.app.dbClientId }}
    - name: TODO_DB_CLIENT_ID
      value: {{ . | quote }}
    {{- end }}
    - name: TOKEN_BROKER_SOCKET
      value: {{ include "todo.broker.socket" . | quote }}
    - name: TODO_ADMIN_LISTEN
      value: {{ printf "0.0.0.0:%v" .Values.app.adminPort | quote }}
    - name: TODO_THREADS
      value: {{ .Values.app.threads | quote }}
    - name: TODO_DRAIN_SECONDS
      value: {{ .Values.app.drainSeconds | quote }}
    - name: TODO_SHUTDOWN_GRACE
      value: {{ .Values.app.shutdownGrace | quote }}
    - name: TODO_DB_POOL_SIZE
      value: {{ .Values.app.dbPoolSize | quote }}
    - name: TODO_DB_MAX_LIFETIME
      value: {{ .Values.app.dbMaxLifetime | quote }}
    - name: TODO_DB_TOKEN_MARGIN
      value: {{ .Values.app.dbTokenMargin | quote }}
    {{- if include "todo.csrfEnabled" . }}
    - name: TODO_CSRF_SECRET_FILE
      value: /var/run/todo-csrf/csrf-secret
    {{- end }}
    - name: TODO_LOG_FORMAT
      value: {{ .Values.app.logFormat | quote }}
    - name: TODO_LOG_LEVEL
      value: {{ .Values.app.logLevel | quote }}
    {{- with .Values.app.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.app.port }}
      protocol: TCP
    - name: app-admin
      containerPort: {{ .Values.app.adminPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: app-admin
    periodSeconds: 1
    failureThreshold: 30
  livenessProbe:
    httpGet:
      path: /healthz
      port: app-admin
    periodSeconds: {{ .Values.app.livenessProbe.periodSeconds }}
    timeoutSeconds: {{ .Values.app.livenessProbe.timeoutSeconds }}
    failureThreshold: {{ .Values.app.livenessProbe.failureThreshold }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: app-admin
    periodSeconds: {{ .Values.app.readinessProbe.periodSeconds }}
    timeoutSeconds: {{ .Values.app.readinessProbe.timeoutSeconds }}
    failureThreshold: {{ .Values.app.readinessProbe.failureThreshold }}
  resources:
    {{- toYaml .Values.app.resources | nindent 4 }}
  securityContext:
    {{- toYaml (mergeOverwrite (deepCopy .Values.containerSecurityContext) .Values.app.securityContext) | nindent 4 }}
  volumeMounts:
    # The broker's socket; read-only: the app connects to it but cannot replace it.
    - name: token-broker-socket
      mountPath: {{ .Values.broker.socketDir }}
      readOnly: true
    - name: tmp
      mountPath: /tmp
    {{- if include "todo.csrfEnabled" . }}
    - name: csrf-secret
      mountPath: /var/run/todo-csrf
      readOnly: true
    {{- end }}
    {{- if and (eq .Values.database.type "sqlite") (not .Values.database.connectionString) }}
    - name: data
      mountPath: {{ dir .Values.database.sqlite.path }}
    {{- end }}
{{- end }}

{{- define "todo.container.broker" -}}
{{- $mode := .Values.identity.mode }}
{{- $wiNoWebhook := and (eq $mode "workloadIdentity") (not .Values.identity.workloadIdentity.webhook) (not .Values.devEmulator.enabled) }}
{{- $prefetch := include "todo.broker.prefetch" . }}
- name: token-broker
  image: {{ include "todo.image" (dict "image" .Values.broker.image "root" . "name" "broker") | quote }}
  imagePullPolicy: {{ .Values.broker.image.pullPolicy }}
  {{- if .Values.broker.nativeSidecar }}
  # A native sidecar: started before the app, stopped after it.
  restartPolicy: Always
  {{- end }}
  args:
    - --source={{ include "todo.broker.source" . }}
    {{- if .Values.devEmulator.enabled }}
    - --imds-endpoint=http://127.0.0.1:{{ .Values.devEmulator.port }}
    {{- end }}
    {{- if and .Values.identity.clientId (ne (include "todo.broker.source" .) "workload-identity") }}
    - --client-id={{ .Values.identity.clientId }}
    {{- end }}
    - --socket={{ include "todo.broker.socket" . }}
    - --socket-mode={{ .Values.broker.socketMode }}
    # An emptyDir is world-writable (with fsGroup: 2777), which the broker refuses by default. It
    # is shared with this pod's containers only, which the socket's mode and the uid/gid
    # allow-list then tell apart.
    - --allow-shared-socket-dir=true
    {{- with .Values.broker.allowUids }}
    - --allow-uids={{ join "," . }}
    {{- end }}
    {{- with .Values.broker.allowGids }}
    - --allow-gids={{ join "," . }}
    {{- end }}
    - --admin-listen=0.0.0.0:{{ .Values.broker.admin.port }}
    {{- with $prefetch }}
    - --prefetch={{ . }}
    {{- end }}
    {{- /* The sinks' tokens are fetched at start too. */}}
    {{- if or $prefetch .Values.broker.sinks }}
    {{- /* The dev emulator is the pod's own, not the node's IMDS: nothing to spread. */}}
    - --prefetch-jitter={{ $.Values.devEmulator.enabled | ternary 0 $.Values.broker.prefetchJitter }}
    {{- end }}
    {{- if .Values.broker.sinks }}
    # broker.sinks: files in broker.sinkDir with these tokens, replaced atomically at each new
    # one; /readyz waits until each is written.
    {{- range .Values.broker.sinks }}
    - --sink={{ include "todo.broker.sink" (dict "sink" . "root" $) }}
    {{- end }}
    {{- end }}
    - --cloud={{ .Values.identity.cloud }}
    - --min-validity={{ .Values.broker.minValidity }}
    - --shutdown-grace={{ .Values.broker.shutdownGrace }}
    - --log-format={{ .Values.broker.logFormat }}
    - --log-level={{ .Values.broker.logLevel }}
    - --audit-log={{ .Values.broker.auditLog }}
    - --caller-rate={{ .Values.broker.callerRate }}
    {{- range .Values.broker.allow }}
    - --allow={{ . }}
    {{- end }}
    {{- range .Values.broker.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- if or $wiNoWebhook .Values.broker.extraEnv }}
  env:
    {{- if $wiNoWebhook }}
    # Workload identity without the webhook: what the webhook would inject, for the broker only.
    - name: AZURE_CLIENT_ID
      value: {{ .Values.identity.clientId | quote }}
    - name: AZURE_TENANT_ID
      value: {{ .Values.identity.workloadIdentity.tenantId | quote }}
    - name: AZURE_FEDERATED_TOKEN_FILE
      value: /var/run/secrets/azure/tokens/azure-identity-token
    - name: AZURE_AUTHORITY_HOST
      value: {{ include "todo.authorityHost" . | quote }}
    {{- end }}
    {{- with .Values.broker.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  ports:
    - name: broker-admin
      containerPort: {{ .Values.broker.admin.port }}
      protocol: TCP
  # /readyz is 200 only when every prefetched token is held (and every sink file written): with
  # a native sidecar the app and extraContainers start only after this probe succeeds.
  startupProbe:
    httpGet:
      path: /readyz
      port: broker-admin
    periodSeconds: {{ .Values.broker.startupProbe.periodSeconds }}
    failureThreshold: {{ .Values.broker.startupProbe.failureThreshold }}
    timeoutSeconds: 2
  readinessProbe:
    httpGet:
      path: /readyz
      port: broker-admin
    periodSeconds: {{ .Values.broker.readinessProbe.periodSeconds }}
    failureThreshold: {{ .Values.broker.readinessProbe.failureThreshold }}
    timeoutSeconds: 2
  livenessProbe:
    httpGet:
      path: /healthz
      port: broker-admin
    periodSeconds: {{ .Values.broker.livenessProbe.periodSeconds }}
    failureThreshold: {{ .Values.broker.livenessProbe.failureThreshold }}
    timeoutSeconds: 2
  resources:
    {{- toYaml .Values.broker.resources | nindent 4 }}
  securityContext:
    {{- toYaml (mergeOverwrite (deepCopy .Values.containerSecurityContext) .Values.broker.securityContext) | nindent 4 }}
  volumeMounts:
    - name: token-broker-socket
      mountPath: {{ .Values.broker.socketDir }}
    {{- if .Values.broker.sinks }}
    # The sink files: the broker writes them, extraContainers read them.
    - name: {{ include "todo.broker.sinkVolume" . }}
      mountPath: {{ include "todo.broker.sinkDir" . }}
    {{- end }}
    {{- if $wiNoWebhook }}
    - name: azure-identity-token
      mountPath: /var/run/secrets/azure/tokens
      readOnly: true
    {{- end }}
{{- end }}

{{- define "todo.container.emulator" -}}
# Development only: a local stand-in for IMDS that issues tokens no Azure service accepts.
- name: imds-emulator
  image: {{ include "todo.image" (dict "image" .Values.devEmulator.image "root" . "name" "devEmulator") | quote }}
  imagePullPolicy: {{ .Values.devEmulator.image.pullPolicy }}
  {{- if .Values.broker.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  args:
    - --listen=127.0.0.1:{{ .Values.devEmulator.port }}
    - --lifetime={{ .Values.devEmulator.lifetime }}
    {{- with .Values.identity.clientId }}
    - --identity=client_id={{ . }}
    {{- end }}
  resources:
    {{- toYaml .Values.devEmulator.resources | nindent 4 }}
  securityContext:
    {{- toYaml (mergeOverwrite (deepCopy .Values.containerSecurityContext) .Values.broker.securityContext) | nindent 4 }}
{{- end }}
