package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// writeFlat writes every scalar of every object as "Kind/name path=value", sorted by path within
// an object. Strings are written raw with \n and \\ escaped, so a line is one value. A list of
// args or command is also written joined by spaces, as path(joined)=....
func writeFlat(path string, objects []*object) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, o := range objects {
		var lines []string
		flatten(o.tree, "", func(p, v string) { lines = append(lines, p+"="+v) }, o.id)
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintf(w, "%s %s\n", o.id, l)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func join(prefix, key string) string {
	if plainKey.MatchString(key) {
		if prefix == "" || strings.HasSuffix(prefix, ">") {
			return prefix + key
		}
		return prefix + "." + key
	}
	b, _ := json.Marshal(key)
	return prefix + "[" + string(b) + "]"
}

func flatten(v any, path string, emit func(p, v string), id string) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			emit(path, "{}")
		}
		for k, child := range t {
			p := join(path, k)
			if k == "args" || k == "command" {
				if words, ok := stringList(child); ok {
					emit(p+"(joined)", escape(strings.Join(words, " ")))
				}
			}
			if s, ok := child.(string); ok && embedded(id, path, k) {
				// A parsed document instead of its text; a Secret's value both ways.
				flattenEmbedded(id, k, s, p, emit)
				if !strings.HasPrefix(id, "Secret/") {
					continue
				}
			}
			flatten(child, p, emit, id)
		}
	case []any:
		if len(t) == 0 {
			emit(path, "[]")
		}
		for i, child := range t {
			flatten(child, fmt.Sprintf("%s[%d]", path, i), emit, id)
		}
	case string:
		emit(path, escape(t))
	case nil:
		emit(path, "null")
	default:
		emit(path, fmt.Sprint(t))
	}
}

// stringList: the items of a list of strings.
func stringList(v any) ([]string, bool) {
	items, ok := v.([]any)
	if !ok {
		return nil, false
	}
	words := make([]string, 0, len(items))
	for _, item := range items {
		s, ok := item.(string)
		if !ok {
			return nil, false
		}
		words = append(words, s)
	}
	return words, true
}

// embedded: a ConfigMap's *.yaml, *.yml or *.json value, or any Secret value.
func embedded(id, path, key string) bool {
	if path != "data" {
		return false
	}
	if strings.HasPrefix(id, "Secret/") {
		return true
	}
	return strings.HasPrefix(id, "ConfigMap/") &&
		(strings.HasSuffix(key, ".yaml") || strings.HasSuffix(key, ".yml") || strings.HasSuffix(key, ".json"))
}

func flattenEmbedded(id, key, s, path string, emit func(p, v string)) {
	if strings.HasPrefix(id, "Secret/") {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			emit(path+">", "!not base64")
			return
		}
		emit(path+">", escape(string(raw)))
		return
	}
	js, err := yaml.YAMLToJSONStrict([]byte(s))
	if err != nil {
		emit(path+">", "!not valid: "+escape(err.Error()))
		return
	}
	var tree any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tree); err != nil {
		emit(path+">", "!not valid: "+escape(err.Error()))
		return
	}
	flatten(tree, path+">", emit, "")
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
