package configure

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ot-redundancy/ot-redundancy/internal/core/atomicfile"
	"github.com/ot-redundancy/ot-redundancy/internal/core/run"
)

// HostKey is one public host key of production, as ssh-keyscan saw it.
type HostKey struct {
	Type string // "ssh-ed25519"
	Blob string // base64
}

// Fingerprint is the key's SHA256 fingerprint, as `ssh-keygen -lf` prints it.
func (k HostKey) Fingerprint() string {
	raw, err := base64.StdEncoding.DecodeString(k.Blob)
	if err != nil {
		return "SHA256:?"
	}
	sum := sha256.Sum256(raw)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// keyPreference is the order ssh-keyscan is asked for keys and the first
// one found is trusted: one key, the strongest production offers.
var keyPreference = []string{"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"}

// KnownHostsName is how known_hosts names production: "host", or
// "[host]:port" off port 22, as ssh looks it up.
func KnownHostsName(host string, port int) string {
	if port == 22 {
		return host
	}
	return "[" + host + "]:" + strconv.Itoa(port)
}

// Scan asks production for its host key with ssh-keyscan. What comes back
// is untrusted: only well-formed lines for the name we asked are kept.
func Scan(ctx context.Context, r *run.Runner, host string, port, timeout int) (HostKey, error) {
	if timeout <= 0 {
		timeout = 10
	}
	argv := []string{"ssh-keyscan", "-T", strconv.Itoa(timeout), "-p", strconv.Itoa(port), "-t", "ed25519,ecdsa,rsa", "--", host}
	out, err := r.Exec(ctx, run.Step{Argv: argv, Timeout: time.Duration(timeout+10) * time.Second})
	keys := parseKnownHosts(out, KnownHostsName(host, port))
	for _, t := range keyPreference {
		for _, k := range keys {
			if k.Type == t {
				return k, nil
			}
		}
	}
	if err != nil {
		return HostKey{}, fmt.Errorf("ssh-keyscan %s port %d: %w", host, port, err)
	}
	return HostKey{}, fmt.Errorf("ssh-keyscan got no host key from %s port %d (is sshd running there?)", host, port)
}

// parseKnownHosts returns the keys of known_hosts-format lines whose first
// field names name (plain, not hashed).
func parseKnownHosts(data []byte, name string) []HostKey {
	var keys []HostKey
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], "@") {
			continue
		}
		if !namesHost(f[0], name) || !validKeyType(f[1]) {
			continue
		}
		if _, err := base64.StdEncoding.DecodeString(f[2]); err != nil {
			continue
		}
		keys = append(keys, HostKey{Type: f[1], Blob: f[2]})
	}
	return keys
}

func namesHost(field, name string) bool {
	for _, n := range strings.Split(field, ",") {
		if n == name {
			return true
		}
	}
	return false
}

func validKeyType(t string) bool {
	for _, k := range keyPreference {
		if t == k {
			return true
		}
	}
	return strings.HasPrefix(t, "ecdsa-sha2-") || strings.HasPrefix(t, "sk-")
}

// Trusted returns the keys path already trusts for name (none when the file
// does not exist).
func Trusted(path, name string) ([]HostKey, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseKnownHosts(data, name), nil
}

// Trust makes key the only key trusted for name in the known_hosts file at
// path: lines for other hosts are kept, the file is replaced atomically.
func Trust(path, name string, key HostKey) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if f := strings.Fields(line); len(f) > 0 && namesHost(f[0], name) {
			continue
		}
		if line != "" {
			b.WriteString(line)
			if !strings.HasSuffix(line, "\n") {
				b.WriteString("\n")
			}
		}
	}
	fmt.Fprintf(&b, "%s %s %s\n", name, key.Type, key.Blob)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Host keys are public; ssh wants the file readable, never writable by others.
	return atomicfile.Write(path, []byte(b.String()), 0o644)
}
