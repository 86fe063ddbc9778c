package enablestandby

// method is how this machine's PostgreSQL becomes production's standby.
type method int

const (
	methodNone        method = iota // it already streams from production
	methodReconfigure               // a standby of production's history: point it at production
	methodRewind                    // pg_rewind to production's timeline, then start as a standby
	methodBaseBackup                // a fresh copy with pg_basebackup into a new data directory
)

func (m method) String() string {
	return [...]string{"none", "point the standby at production",
		"pg_rewind", "pg_basebackup into a new data directory"}[m]
}

// situation is what the choice of method depends on.
type situation struct {
	streaming    bool   // runs as a standby streaming from production
	rebuilt      bool   // an earlier run put a new copy in place
	copyReady    bool   // an earlier run's copy is complete and waits to be put in place
	sameSystem   bool   // the system identifiers match
	interrupted  string // why an earlier run's rebuild must be redone from a copy ("" when not)
	askedBackup  bool   // --base-backup
	historyKnown bool   // this machine's timeline history could be read
	forked       bool   // the two histories share a timeline
	doubtful     bool   // this machine may be the newer one (refused unless --force)
	standby      bool   // in recovery, or starts as a standby
	diverged     bool   // it wrote WAL after the fork (a running primary will: its shutdown checkpoint)
	rewindWhyNot string // why pg_rewind cannot work here ("" when it can)
}

// choose picks the method and says why. The order matters: the first
// case that holds decides.
func choose(s situation) (method, string) {
	switch {
	case s.streaming:
		return methodNone, "this machine's PostgreSQL already streams from production"
	case s.rebuilt:
		return methodReconfigure, "an earlier run put a copy of production's database in place"
	case s.copyReady:
		return methodBaseBackup, "an earlier run's copy of production's database is complete: it only waits to be put in place"
	case !s.sameSystem:
		return methodBaseBackup, "this machine's database is not a copy of production's (its system identifier differs)"
	case s.interrupted != "":
		return methodBaseBackup, s.interrupted
	case s.askedBackup:
		return methodBaseBackup, "asked for (--base-backup)"
	case !s.historyKnown:
		return methodBaseBackup, "this machine's timeline history file is missing: where it parted from production is unknown"
	case !s.forked:
		return methodBaseBackup, "its timeline history shares no timeline with production's"
	case s.doubtful:
		return methodBaseBackup, "which of the two is newer cannot be told (--force): a fresh copy of production is the only safe way"
	case s.standby && !s.diverged:
		return methodReconfigure, "it is a standby on production's history and wrote nothing of its own"
	case s.rewindWhyNot == "":
		if !s.diverged {
			return methodRewind, "pg_rewind -R makes it a standby (nothing to rewind)"
		}
		return methodRewind, "its timeline parted from production's and pg_rewind can rewind it"
	default:
		return methodBaseBackup, "pg_rewind cannot work here: " + s.rewindWhyNot
	}
}
