package run

import (
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// A step with Stall set is watched while it runs: when its process group
// makes no progress for that long, the group is stopped and the step fails
// with Error.Stalled. A deadline (Timeout) bounds a whole transfer; this
// bounds a transfer that has stopped moving: a frozen production, a link
// that holds but carries nothing.
//
// Progress is measured from outside the command, so it holds whatever the
// tool does: the bytes every process of the step's group has read and
// written (rchar + wchar of /proc/<pid>/io: pipes, sockets and files alike),
// plus the bytes the step's stdout received. Both only grow while data or
// items move.
//
// rsync's own --timeout is not enough. Measured with rsync 3.5.0, pulling
// over a pipe-connected remote shell with --timeout=5, its sender frozen
// with SIGSTOP (the connection stays open): the client rsync was still
// waiting 40 s later, and 8 times its timeout is not the limit. Its
// generator keeps writing keep-alive messages to the frozen sender every
// timeout/2, those writes succeed (they land in the pipe's or the ssh
// channel's buffers, which a few bytes at a time never fill), and rsync
// counts a successful write as I/O (io.c, check_timeout takes the later of
// the last read and the last write), so its timeout never fires.
//
// Those keep-alives, and ssh's own (ServerAliveInterval) when the step runs
// an ssh client without a shared master, move a few bytes now and then.
// So the group's counters count as progress only once they moved by at
// least stallFloor since the last progress: well above that noise (4 bytes
// a minute for rsync, about a KiB in two minutes for ssh), well below any
// transfer that is moving. Bytes on the step's stdout (items rsync names,
// lines a tool prints) always count.
const stallFloor = 4 << 10

// stallPoll is how often the group is measured: a scan of /proc's stat
// files, a few milliseconds at most.
func stallPoll(stall time.Duration) time.Duration {
	return min(max(stall/4, 50*time.Millisecond), 2*time.Second)
}

// counting is an io.Writer in front of a step's stdout that counts bytes.
type counting struct {
	n *atomic.Int64
	w io.Writer
}

func (c counting) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.w.Write(p)
}

// watchStall measures the group pgid every poll until ctx ends; when
// nothing moved for stall it calls stop and returns true. A process's bytes
// count from its first sight (a new process's own I/O is progress, its mere
// appearance or exit is not: a shell loop starting sleeps is not working).
func watchStall(ctx context.Context, pgid int, stall time.Duration, out *atomic.Int64, stop func()) bool {
	t := time.NewTicker(stallPoll(stall))
	defer t.Stop()
	seen := map[int]int64{}
	groupIO(pgid, seen)
	lastOut := out.Load()
	var moved int64
	since := time.Now()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		n, measured := groupIO(pgid, seen)
		moved += n
		if o := out.Load(); o != lastOut || moved >= stallFloor || !measured {
			// !measured: no access to /proc/<pid>/io, so no stall can be told.
			lastOut, moved, since = o, 0, time.Now()
			continue
		}
		if time.Since(since) >= stall {
			stop()
			return true
		}
	}
}

// groupIO is how many bytes the processes of group pgid read and wrote
// (rchar + wchar) since seen, which it updates: pid -> bytes at the last
// look. measured is false when processes of the group exist and the I/O
// of none could be read.
func groupIO(pgid int, seen map[int]int64) (moved int64, measured bool) {
	d, err := os.Open("/proc")
	if err != nil {
		return 0, false
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	want := []byte(strconv.Itoa(pgid))
	procs, readable := 0, 0
	now := map[int]int64{}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil || !inGroup(stat, want) {
			continue
		}
		procs++
		io, err := os.ReadFile("/proc/" + name + "/io")
		if err != nil {
			continue
		}
		readable++
		n := ioField(io, "rchar: ") + ioField(io, "wchar: ")
		now[pid] = n
		moved += max(n-seen[pid], 0)
	}
	clear(seen)
	maps.Copy(seen, now)
	return moved, procs == 0 || readable > 0
}

// inGroup tells whether a /proc/<pid>/stat line is of a live process of
// group pgid: "pid (comm) state ppid pgrp ...", comm may hold anything, so
// the fields are read after its last ')'. A zombie has no I/O to measure.
func inGroup(stat, pgid []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	f := bytes.Fields(stat[i+1:])
	return len(f) > 2 && f[0][0] != 'Z' && bytes.Equal(f[2], pgid)
}

// ioField reads one "name: value" line of /proc/<pid>/io.
func ioField(io []byte, name string) int64 {
	i := bytes.Index(io, []byte(name))
	if i < 0 {
		return 0
	}
	v := io[i+len(name):]
	if j := bytes.IndexByte(v, '\n'); j >= 0 {
		v = v[:j]
	}
	n, _ := strconv.ParseInt(string(v), 10, 64)
	return n
}
