package confsync

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ot-redundancy/ot-redundancy/internal/core/cli"
)

// A source's signed-by keyring decides whose packages root installs: it
// must be a file this machine already has and that only root can change.
// A new key is the operator's decision; the refusal shows its fingerprint.

// openpgpKey is a primary key found in a keyring.
type openpgpKey struct {
	fingerprint string // upper-case hex
	uid         string // its first user ID, printable
}

func (k openpgpKey) String() string {
	if k.uid == "" {
		return k.fingerprint
	}
	return fmt.Sprintf("%s %q", k.fingerprint, k.uid)
}

// maxKeyring bounds a keyring read from production (Debian's archive
// keyring is about 100 KiB).
const maxKeyring = 1 << 20

// keyringKeys returns the primary keys of an OpenPGP keyring, binary or
// ASCII-armored (RFC 9580: v4 fingerprints are SHA-1, v6 SHA-256).
func keyringKeys(data []byte) ([]openpgpKey, error) {
	if bytes.Contains(data, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		var err error
		if data, err = dearmor(data); err != nil {
			return nil, err
		}
	}
	var keys []openpgpKey
	for len(data) > 0 {
		tag, body, rest, err := packet(data)
		if err != nil {
			return nil, err
		}
		data = rest
		switch tag {
		case 6: // public key
			fpr, err := fingerprint(body)
			if err != nil {
				return nil, err
			}
			keys = append(keys, openpgpKey{fingerprint: fpr})
		case 13: // user ID
			if n := len(keys); n > 0 && keys[n-1].uid == "" {
				uid := cli.Printable(string(body))
				if len(uid) > 80 {
					uid = uid[:80] + "..."
				}
				keys[n-1].uid = uid
			}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key in it")
	}
	return keys, nil
}

// dearmor decodes the first armored block.
func dearmor(data []byte) ([]byte, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxKeyring)
	var b64 strings.Builder
	state := 0 // 0 before the block, 1 headers, 2 body
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case state == 0 && l == "-----BEGIN PGP PUBLIC KEY BLOCK-----":
			state = 1
		case state == 1 && l == "":
			state = 2
		case state == 1 && !strings.Contains(l, ":"): // no headers at all
			state = 2
			b64.WriteString(l)
		case state == 2 && (strings.HasPrefix(l, "=") || strings.HasPrefix(l, "-----END")):
			return base64.StdEncoding.DecodeString(b64.String())
		case state == 2:
			b64.WriteString(l)
		}
	}
	return nil, errors.New("an armored key block without its end")
}

// packet splits off the first OpenPGP packet (RFC 9580 section 4.2).
func packet(data []byte) (tag int, body, rest []byte, err error) {
	bad := errors.New("not an OpenPGP keyring")
	if len(data) < 2 || data[0]&0x80 == 0 {
		return 0, nil, nil, bad
	}
	var n, hdr int
	if data[0]&0x40 != 0 { // new format
		tag = int(data[0] & 0x3f)
		switch l := int(data[1]); {
		case l < 192:
			n, hdr = l, 2
		case l < 224 && len(data) >= 3:
			n, hdr = (l-192)<<8+int(data[2])+192, 3
		case l == 255 && len(data) >= 6:
			n, hdr = int(binary.BigEndian.Uint32(data[2:6])), 6
		default:
			return 0, nil, nil, bad // partial lengths have no place in keys
		}
	} else {
		tag = int(data[0]>>2) & 0x0f
		switch data[0] & 3 {
		case 0:
			n, hdr = int(data[1]), 2
		case 1:
			if len(data) < 3 {
				return 0, nil, nil, bad
			}
			n, hdr = int(binary.BigEndian.Uint16(data[1:3])), 3
		case 2:
			if len(data) < 5 {
				return 0, nil, nil, bad
			}
			n, hdr = int(binary.BigEndian.Uint32(data[1:5])), 5
		default:
			n, hdr = len(data)-1, 1
		}
	}
	if n < 0 || hdr+n > len(data) {
		return 0, nil, nil, bad
	}
	return tag, data[hdr : hdr+n], data[hdr+n:], nil
}

// fingerprint of a public-key packet body.
func fingerprint(body []byte) (string, error) {
	if len(body) == 0 {
		return "", errors.New("an empty public key")
	}
	var h hash.Hash
	var prefix []byte
	switch body[0] {
	case 4:
		h = sha1.New()
		prefix = []byte{0x99, byte(len(body) >> 8), byte(len(body))}
	case 5, 6:
		h = sha256.New()
		prefix = binary.BigEndian.AppendUint32([]byte{0x9a + body[0] - 5}, uint32(len(body)))
	default:
		return "", fmt.Errorf("a version %d key, which apt does not use", body[0])
	}
	h.Write(prefix)
	h.Write(body)
	return fmt.Sprintf("%X", h.Sum(nil)), nil
}

// checkRootOnly says why path is not a regular file that only root can
// change (nil when it is): the file and every directory above it, before
// and after following symlinks, owned by root and writable by nobody else,
// except a sticky directory (/tmp) above an entry root owns.
func checkRootOnly(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", real)
	}
	for _, p := range []string{path, real} {
		if err := rootOnlyChain(p); err != nil {
			return err
		}
	}
	return nil
}

func rootOnlyChain(p string) error {
	for leaf := true; ; leaf = false {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 {
			return fmt.Errorf("%s belongs to uid %d, not root", p, st.Uid)
		}
		if leaf && fi.Mode().IsRegular() && fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s is writable by group or others", p)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil
		}
		pi, err := os.Stat(parent)
		if err != nil {
			return err
		}
		if pi.Mode().Perm()&0o022 != 0 && pi.Mode()&os.ModeSticky == 0 {
			return fmt.Errorf("%s is writable by group or others", parent)
		}
		p = parent
	}
}
