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
