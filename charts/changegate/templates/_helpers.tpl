{{- define "changegate.name" -}}changegate{{- end -}}

{{- define "changegate.labels" -}}
app.kubernetes.io/name: changegate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "changegate.selector" -}}
app.kubernetes.io/name: changegate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "changegate.serviceName" -}}changegate-webhook{{- end -}}
{{- define "changegate.tlsSecret" -}}changegate-webhook-tls{{- end -}}

{{- define "changegate.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}


{{/* The server installed with this chart, when it is. */}}
{{- define "changegate.embedded" -}}
{{- if (index .Values "changegate-server" | default dict).enabled }}true{{ end -}}
{{- end -}}

{{/* The cluster the embedded server registers for this operator. */}}
{{- define "changegate.embeddedCluster" -}}
{{- $bootstrap := dig "bootstrap" "clusters" (list) (index .Values "changegate-server" | default dict) -}}
{{- if not $bootstrap -}}
{{- fail "changegate-server.bootstrap.clusters is empty: name this cluster there (e.g. [local]), so that the server registers it and the operator gets its token" -}}
{{- end -}}
{{- first $bootstrap -}}
{{- end -}}

{{/* Where the operator finds the server. */}}
{{- define "changegate.serverUrl" -}}
{{- if .Values.server.url -}}
{{ .Values.server.url }}
{{- else -}}
{{- $port := dig "service" "port" 80 (index .Values "changegate-server" | default dict) -}}
http://changegate-server.{{ .Release.Namespace }}.svc{{ if ne (int $port) 80 }}:{{ $port }}{{ end }}
{{- end -}}
{{- end -}}

{{/* One server: the one installed here, or server.url, never both or neither. */}}
{{- define "changegate.validate" -}}
{{- if and .Values.server.url (include "changegate.embedded" .) }}
{{- fail (printf "server.url=%s points the operator at a central server, while this chart also installs one: add --set changegate-server.enabled=false (and put this cluster's agent token in Secret %s, key token)" .Values.server.url .Values.server.tokenSecret) }}
{{- end }}
{{- if not (or .Values.server.url (include "changegate.embedded" .)) }}
{{- fail "no server: with changegate-server.enabled=false, set server.url to the central changegate server (e.g. https://changegate.example.com) and its agent token in Secret server.tokenSecret" }}
{{- end }}
{{- end -}}
