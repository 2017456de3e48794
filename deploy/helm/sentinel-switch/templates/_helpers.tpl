{{/* Names. */}}
{{- define "sentinel-switch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sentinel-switch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sentinel-switch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sentinel-switch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel-switch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sentinel-switch.labels" -}}
helm.sh/chart: {{ include "sentinel-switch.chart" . }}
{{ include "sentinel-switch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sentinel-switch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sentinel-switch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sentinel-switch.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%v@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%v" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The bitnami/redis release: its fullname (Bitnami's common.names.fullname) and namespace. */}}
{{- define "sentinel-switch.redisFullname" -}}
{{- if .Values.redis.fullname -}}
{{- .Values.redis.fullname | trunc 63 | trimSuffix "-" -}}
{{- else if contains "redis" .Values.redis.releaseName -}}
{{- .Values.redis.releaseName | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-redis" .Values.redis.releaseName | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sentinel-switch.redisNamespace" -}}
{{- default .Release.Namespace .Values.redis.namespace -}}
{{- end -}}

{{/* Token Secret: generated "<fullname>-token" or auth.existingSecret. */}}
{{- define "sentinel-switch.tokenSecretName" -}}
{{- default (printf "%s-token" (include "sentinel-switch.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "sentinel-switch.hookConfigMapName" -}}
{{- printf "%s-hook" (include "sentinel-switch.fullname" .) -}}
{{- end -}}

{{/* What the Redis side puts in SENTINEL_SWITCH_URL. */}}
{{- define "sentinel-switch.webhookURL" -}}
{{- printf "http://%s.%s.svc.%s:%v" (include "sentinel-switch.fullname" .) .Release.Namespace .Values.redis.clusterDomain .Values.service.port -}}
{{- end -}}

{{/* Mount points inside the sentinel-switch container. */}}
{{- define "sentinel-switch.configDir" -}}/etc/sentinel-switch/config{{- end -}}
{{- define "sentinel-switch.tokenDir" -}}/etc/sentinel-switch/token{{- end -}}
{{- define "sentinel-switch.tlsDir" -}}/etc/sentinel-switch/redis-tls{{- end -}}

{{/*
What the service's container and the `helm test` pod (templates/tests/check.yaml) share: the
config file and the Redis password it refers to, and the mounts the config names (config,
token, Redis TLS). One definition, so the test checks exactly what the service runs with.
*/}}
{{- define "sentinel-switch.env" -}}
- name: SENTINEL_SWITCH_CONFIG
  value: {{ include "sentinel-switch.configDir" . }}/config.yaml
{{- if .Values.redis.auth.enabled }}
# Referenced by the config as password: {env: REDIS_PASSWORD}.
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "sentinel-switch.redisFullname" .) .Values.redis.auth.existingSecret }}
      key: {{ .Values.redis.auth.existingSecretPasswordKey }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sentinel-switch.volumeMounts" -}}
- name: config
  mountPath: {{ include "sentinel-switch.configDir" . }}
  readOnly: true
- name: token
  mountPath: {{ include "sentinel-switch.tokenDir" . }}
  readOnly: true
{{- if .Values.redis.tls.enabled }}
- name: redis-tls
  mountPath: {{ include "sentinel-switch.tlsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "sentinel-switch.volumes" -}}
- name: config
  configMap:
    name: {{ include "sentinel-switch.fullname" . }}-config
- name: token
  secret:
    secretName: {{ include "sentinel-switch.tokenSecretName" . }}
    # Readable by the pod's fsGroup only.
    defaultMode: 0440
    items:
      - key: {{ .Values.auth.existingSecretKey }}
        path: {{ .Values.auth.existingSecretKey }}
{{- if .Values.redis.tls.enabled }}
- name: redis-tls
  secret:
    secretName: {{ required "redis.tls.existingSecret is required when redis.tls.enabled (Bitnami: tls.existingSecret, or <fullname>-crt with tls.autoGenerated)" .Values.redis.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/*
The master sets with every default filled in, as YAML {items: [...]}: the one place where the
config file, the Role(s) and the target Service(s) get their names and namespaces from.
*/}}
{{- define "sentinel-switch.masterSets" -}}
{{- $fullname := include "sentinel-switch.redisFullname" . -}}
{{- $redisNs := include "sentinel-switch.redisNamespace" . -}}
{{- $domain := .Values.redis.clusterDomain -}}
{{- $items := list -}}
{{- $seenNames := dict -}}
{{- $seenTargets := dict -}}
{{- $seenSlices := dict -}}
{{- if not .Values.masterSets -}}
{{- fail "masterSets must list at least one Sentinel master set" -}}
{{- end -}}
{{- range $i, $s := .Values.masterSets -}}
{{- $name := required (printf "masterSets[%d].name is required (Bitnami's sentinel.masterSet, e.g. mymaster)" $i) $s.name -}}
{{- if hasKey $seenNames $name -}}
{{- fail (printf "masterSets: name %q appears twice" $name) -}}
{{- end -}}
{{- $_ := set $seenNames $name true -}}
{{- $target := default dict $s.target -}}
{{- $tns := default $redisNs $target.namespace -}}
{{- $tname := default (printf "%s-master" $fullname) $target.name -}}
{{- $key := printf "%s/%s" $tns $tname -}}
{{- if hasKey $seenTargets $key -}}
{{- fail (printf "masterSets: target Service %s is used by two master sets; give each its own target.name" $key) -}}
{{- end -}}
{{- $_ := set $seenTargets $key true -}}
{{- $sentinels := $s.sentinels -}}
{{- if not $sentinels -}}
{{- $sentinels = list (printf "%s-headless.%s.svc.%s:%v" $fullname $redisNs $domain $.Values.redis.sentinelPort) -}}
{{- end -}}
{{- $initial := default (printf "%s-node-0.%s-headless.%s.svc.%s" $fullname $fullname $redisNs $domain) $target.initialExternalName -}}
{{- $kind := default "externalName" $target.kind -}}
{{- if not (has $kind (list "externalName" "endpointSlice")) -}}
{{- fail (printf "masterSets[%d].target.kind must be externalName or endpointSlice, not %q" $i $kind) -}}
{{- end -}}
{{- if and (ne $kind "endpointSlice") (or $target.endpointSliceName $target.headless) -}}
{{- fail (printf "masterSets[%d].target: endpointSliceName and headless are only used with kind: endpointSlice" $i) -}}
{{- end -}}
{{- $sliceKey := printf "%s/%s" $tns (default $tname $target.endpointSliceName) -}}
{{- if and (eq $kind "endpointSlice") (hasKey $seenSlices $sliceKey) -}}
{{- fail (printf "masterSets: EndpointSlice %s is used by two master sets; give each its own target.endpointSliceName" $sliceKey) -}}
{{- end -}}
{{- if eq $kind "endpointSlice" -}}
{{- $_ := set $seenSlices $sliceKey true -}}
{{- end -}}
{{- $item := dict "name" $name "sentinels" $sentinels "targetNamespace" $tns "targetName" $tname "podNamespace" (default $tns $s.podNamespace) "explicitPodNamespace" (default "" $s.podNamespace) "initialExternalName" $initial "targetKind" $kind "endpointSliceName" (default $tname $target.endpointSliceName) "explicitEndpointSliceName" (default "" $target.endpointSliceName) "headless" (default false $target.headless) -}}
{{- if not (kindIs "invalid" $s.quorum) -}}
{{- $_ := set $item "quorum" (int $s.quorum) -}}
{{- end -}}
{{- if $s.fencing -}}
{{- $_ := set $item "fencing" $s.fencing -}}
{{- end -}}
{{- $items = append $items $item -}}
{{- end -}}
{{- toYaml (dict "items" $items) -}}
{{- end -}}

{{/*
RBAC per namespace, as YAML {<namespace>: {services: [names], readServices: [names],
endpointSlices: [names], pods: bool}}: services get+patch on the ExternalName targets, get only
on the endpointSlice targets, endpointslices get+patch on their slices, events create where
targets live; pods list where IPs are mapped (ipMapping) and wherever an endpointSlice target's
pods live (every address is checked to be a live pod's).
*/}}
{{- define "sentinel-switch.rbacByNamespace" -}}
{{- $sets := (include "sentinel-switch.masterSets" . | fromYaml).items -}}
{{- $byNs := dict -}}
{{- range $sets -}}
{{- $entry := default (dict "services" (list) "readServices" (list) "endpointSlices" (list) "pods" false) (get $byNs .targetNamespace) -}}
{{- if eq .targetKind "endpointSlice" -}}
{{- $_ := set $entry "readServices" (append $entry.readServices .targetName) -}}
{{- $_ := set $entry "endpointSlices" (append $entry.endpointSlices .endpointSliceName) -}}
{{- else -}}
{{- $_ := set $entry "services" (append $entry.services .targetName) -}}
{{- end -}}
{{- $_ := set $byNs .targetNamespace $entry -}}
{{- end -}}
{{- range $sets -}}
{{- if or $.Values.ipMapping (eq .targetKind "endpointSlice") -}}
{{- $entry := default (dict "services" (list) "readServices" (list) "endpointSlices" (list) "pods" false) (get $byNs .podNamespace) -}}
{{- $_ := set $entry "pods" true -}}
{{- $_ := set $byNs .podNamespace $entry -}}
{{- end -}}
{{- end -}}
{{- toYaml $byNs -}}
{{- end -}}

{{/* The service's configuration file (src/config.ts), built as data so it is always valid YAML. */}}
{{- define "sentinel-switch.config" -}}
{{- $sets := (include "sentinel-switch.masterSets" . | fromYaml).items -}}
{{- $c := .Values.config -}}
{{- $redis := .Values.redis -}}
{{- $out := list -}}
{{- range $sets -}}
{{- $target := dict "namespace" .targetNamespace "name" .targetName -}}
{{- if eq .targetKind "endpointSlice" -}}
{{- $_ := set $target "kind" "endpointSlice" -}}
{{- if .explicitEndpointSliceName -}}
{{- $_ := set $target "endpointSliceName" .explicitEndpointSliceName -}}
{{- end -}}
{{- end -}}
{{- $set := dict "name" .name "sentinels" .sentinels "target" $target -}}
{{- if hasKey . "quorum" -}}
{{- $_ := set $set "quorum" .quorum -}}
{{- end -}}
{{- if .explicitPodNamespace -}}
{{- $_ := set $set "podNamespace" .explicitPodNamespace -}}
{{- end -}}
{{- with .fencing -}}
{{- $_ := set $set "fencing" . -}}
{{- end -}}
{{- if $redis.auth.enabled -}}
{{- $auth := dict "password" (dict "env" "REDIS_PASSWORD") -}}
{{- if $redis.auth.username -}}
{{- $_ := set $auth "username" $redis.auth.username -}}
{{- end -}}
{{- $_ := set $set "redisAuth" $auth -}}
{{- if $redis.auth.sentinel -}}
{{- $_ := set $set "sentinelAuth" (deepCopy $auth) -}}
{{- end -}}
{{- end -}}
{{- if $redis.tls.enabled -}}
{{- $tlsDir := include "sentinel-switch.tlsDir" $ -}}
{{- $tls := dict "enabled" true "insecureSkipVerify" (default false $redis.tls.insecureSkipVerify) -}}
{{- if $redis.tls.caFilename -}}
{{- $_ := set $tls "caFile" (printf "%s/%s" $tlsDir $redis.tls.caFilename) -}}
{{- end -}}
{{- if and $redis.tls.certFilename $redis.tls.keyFilename -}}
{{- $_ := set $tls "certFile" (printf "%s/%s" $tlsDir $redis.tls.certFilename) -}}
{{- $_ := set $tls "keyFile" (printf "%s/%s" $tlsDir $redis.tls.keyFilename) -}}
{{- end -}}
{{- $_ := set $set "tls" $tls -}}
{{- end -}}
{{- $out = append $out $set -}}
{{- end -}}
{{- $config := dict
  "listen" (dict "host" $c.listenHost "port" (int $c.port))
  "token" (dict "file" (printf "%s/%s" (include "sentinel-switch.tokenDir" .) .Values.auth.existingSecretKey))
  "reconcileIntervalSeconds" $c.reconcileIntervalSeconds
  "redisTimeoutMs" (int $c.redisTimeoutMs)
  "followUpMs" (int $c.followUpMs)
  "bodyLimitBytes" (int $c.bodyLimitBytes)
  "kubernetes" (dict "clusterDomain" $redis.clusterDomain "timeoutMs" (int $c.kubernetesTimeoutMs))
  "logLevel" $c.logLevel
  "masterSets" $out -}}
{{- toYaml $config -}}
{{- end -}}
