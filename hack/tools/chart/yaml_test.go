package chart

import "sigs.k8s.io/yaml"

func yamlUnmarshal(data []byte, into any) error { return yaml.Unmarshal(data, into) }
