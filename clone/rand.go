package clone

import (
	"crypto/rand"
	"encoding/json"
)

var randRead = rand.Read

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
