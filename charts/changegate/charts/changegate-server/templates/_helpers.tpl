{{- define "changegate-server.name" -}}changegate-server{{- end -}}

{{- define "changegate-server.labels" -}}
app.kubernetes.io/name: changegate-server
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "changegate-server.selector" -}}
app.kubernetes.io/name: changegate-server
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "changegate-server.dataClaim" -}}changegate-server-data{{- end -}}
{{- define "changegate-server.dataDir" -}}/var/lib/changegate{{- end -}}

{{- define "changegate-server.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "changegate-server.sqlite" -}}
{{- if eq .Values.database.kind "sqlite" }}true{{ end -}}
{{- end -}}

{{/* The Ingress host: ingress.host, or the host name of publicUrl. */}}
{{- define "changegate-server.ingressHost" -}}
{{- default (urlParse .Values.publicUrl).hostname .Values.ingress.host -}}
{{- end -}}

{{/* Combinations the schema cannot explain well: fail with a clear message. */}}
{{- define "changegate-server.validate" -}}
{{- if and (include "changegate-server.sqlite" .) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount=%v with database.kind=sqlite: the embedded SQLite database has a single writer on a ReadWriteOnce volume; use replicaCount=1, or database.kind=postgres (database.existingSecret) for more replicas" .Values.replicaCount) }}
{{- end }}
{{- end -}}

{{- define "changegate-server.bootstrapSecret" -}}changegate-server-bootstrap{{- end -}}
{{- define "changegate-server.bootstrapDir" -}}/var/run/changegate/bootstrap{{- end -}}

{{/* publicUrl, or the Service's address in the cluster. */}}
{{- define "changegate-server.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{ .Values.publicUrl }}
{{- else -}}
http://{{ include "changegate-server.name" . }}.{{ .Release.Namespace }}.svc{{ if ne (int .Values.service.port) 80 }}:{{ .Values.service.port }}{{ end }}
{{- end -}}
{{- end -}}
