package filestore

import "testing"

// Production's listing is untrusted: names outside the filestore are refused.
func TestParseListing(t *testing.T) {
	tm, dbs, buckets, err := parseListing([]byte("1700000000\n./db1\x00./db1/ab\x00./db2\x00"))
	if err != nil || tm != 1700000000 || len(dbs) != 2 || len(buckets) != 1 || buckets[0] != "db1/ab" {
		t.Fatalf("got %d %v %v %v", tm, dbs, buckets, err)
	}
	for _, bad := range []string{"./../x\x00", "/etc\x00", "./a/../../b\x00", "./a/b/c\x00", "./\x00", "./a/.\x00", "./a//b\x00", "./a"} {
		if _, _, _, err := parseListing([]byte("1700000000\n" + bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, _, _, err := parseListing([]byte("x\n")); err == nil {
		t.Errorf("a bad clock accepted")
	}
}
