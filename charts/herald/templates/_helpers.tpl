{{/* Labels on every object's metadata. Selectors and pod labels use only herald.selector, as config/ does. */}}
{{- define "herald.labels" -}}
app.kubernetes.io/name: herald
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* herald.image: repository:tag, the tag defaulting to the chart's appVersion (what `make image` builds). */}}
{{- define "herald.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* herald.flags: "- --name=value" lines for the entries of a dict whose value is set (not null, "" or 0);
     range sorts the keys, so renderings are stable. */}}
{{- define "herald.flags" -}}
{{- range $name, $value := . }}
{{- if and (not (kindIs "invalid" $value)) (ne (toString $value) "") (ne (toString $value) "0") }}
- {{ printf "--%s=%v" $name $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* herald.common: the flags both components take. */}}
{{- define "herald.common" -}}
{{- include "herald.flags" (dict "load-balancer-class" .Values.loadBalancerClass "zap-log-level" .Values.logLevel) }}
{{- end }}

{{/* herald.rbac: the objects of a generated role.yaml (files/rbac/), namespaced into the release. */}}
{{- define "herald.rbac" -}}
{{- $root := .root }}
{{- range regexSplit "(?m)^---\\s*$" ($root.Files.Get .file) -1 }}
{{- $obj := fromYaml . }}
{{- if $obj }}
{{- if eq $obj.kind "Role" }}
{{- $_ := set $obj.metadata "namespace" $root.Release.Namespace }}
{{- end }}
{{- $_ := set $obj.metadata "labels" (include "herald.labels" $root | fromYaml) }}
---
{{ toYaml $obj }}
{{- end }}
{{- end }}
{{- end }}
