package clone

import (
	"crypto/rand"
	"encoding/json"
)

// randRead fills b with random bytes (crypto/rand).
func randRead(b []byte) (int, error) { return rand.Read(b) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
