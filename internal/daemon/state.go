package daemon

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/maps"
)

// DefaultStateDir is where `vswitch daemon` keeps its state unless told
// otherwise (--state-dir) or told to keep none (--no-state).
const DefaultStateDir = "/var/lib/vswitch"

// StateDirEnv names the environment variable that overrides
// DefaultStateDir.
const StateDirEnv = "VSWITCH_STATE_DIR"

// StateFile is the name of the state database inside the state directory.
const StateFile = "state.db"

// stateFormat is the layout version of the state database; a daemon
// refuses a database of a later layout rather than misread it.
const stateFormat = 1

// The state database (bbolt) holds:
//
//	meta      format -> decimal layout version
//	ports     interface name -> savedPort (JSON)
//	program   object -> the ELF bytes; params -> control.ProgLoadParams (JSON, without the object)
//	maplog    8-byte big-endian sequence -> mapChange (JSON), every control-plane map write in order
//	snapshot  map name -> {spec -> savedSpec (JSON); entries -> key -> value}, taken on clean shutdown
//
// Every acknowledged change is one committed (fsynced) transaction,
// written before the daemon replies.
var (
	bucketMeta     = []byte("meta")
	bucketPorts    = []byte("ports")
	bucketProgram  = []byte("program")
	bucketMapLog   = []byte("maplog")
	bucketSnapshot = []byte("snapshot")
	keyFormat      = []byte("format")
	keyObject      = []byte("object")
	keyParams      = []byte("params")
	keySpec        = []byte("spec")
	keyEntries     = []byte("entries")
)

// savedPort is an attached port: its index and its attach parameters,
// kept as the JSON of control.PortAttachParams so that fields added there
// are kept without code here.
type savedPort struct {
	Index  int             `json:"index"`
	Params json.RawMessage `json:"params"`
}

// mapChange is one control-plane write to a map.
type mapChange struct {
	Op    string `json:"op"` // update, delete or clear
	Map   string `json:"map"`
	Key   []byte `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`
	// Program names the program put in a program array's slot (whose
	// value, a program number, only means something to one object).
	Program string `json:"program,omitempty"`
}

// savedSpec is what a snapshot's map must match to be restored into.
type savedSpec struct {
	Type      string `json:"type"`
	KeySize   uint32 `json:"key_size"`
	ValueSize uint32 `json:"value_size"`
}

func specOf(m maps.Map) savedSpec {
	s := m.Spec()
	return savedSpec{Type: s.Type.String(), KeySize: s.KeySize, ValueSize: s.ValueSize}
}

type savedEntry struct{ key, value []byte }

type savedMap struct {
	spec    savedSpec
	entries []savedEntry
}

// saved is everything read from the state database at start.
type saved struct {
	ports    []savedPort // by index
	names    []string    // their interface names
	program  *control.ProgLoadParams
	log      []mapChange
	snapshot map[string]*savedMap
}

func (s *saved) empty() bool {
	return len(s.ports) == 0 && s.program == nil && len(s.log) == 0 && len(s.snapshot) == 0
}

// store is the daemon's durable state.
type store struct {
	db   *bolt.DB
	path string
}

// ErrStateLocked is returned by openStore when another daemon holds the
// state database.
var ErrStateLocked = errors.New("state database in use by another daemon")

// openStore opens (creating it if needed) the state database in dir and
// reads it. A database that cannot be opened or read (corrupt, truncated,
// not a database) is moved aside as state.db.corrupt-TIMESTAMP, logged,
// and replaced by an empty one: its contents are kept for the operator,
// never silently dropped, and the daemon starts.
func openStore(dir string, log *slog.Logger) (*store, *saved, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, StateFile)
	st, sv, err := tryOpen(path)
	if err == nil {
		return st, sv, nil
	}
	if errors.Is(err, ErrStateLocked) {
		return nil, nil, fmt.Errorf("%s: %w: stop the other daemon, or give this one another --state-dir (or --no-state)", path, err)
	}
	var fe *formatError
	if errors.As(err, &fe) {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, nil, fmt.Errorf("state %s is unreadable (%v) and could not be set aside: %w", path, err, rerr)
	}
	syncDir(dir)
	log.Error("state database unreadable: set aside, starting with an empty state (nothing from it is restored; inspect it with `bbolt check`)",
		"file", path, "moved_to", aside, "err", err)
	st, sv, err = tryOpen(path)
	if err != nil {
		return nil, nil, fmt.Errorf("state %s: %w", path, err)
	}
	return st, sv, nil
}

type formatError struct{ found, known int }

func (e *formatError) Error() string {
	return fmt.Sprintf("state layout %d written by a newer vswitch (this one reads %d): run that version, or move the file away", e.found, e.known)
}

// tryOpen opens and reads path. A panic of the database code on a corrupt
// page is an error like any other.
func tryOpen(path string) (st *store, sv *saved, err error) {
	_, statErr := os.Stat(path)
	var db *bolt.DB
	defer func() {
		if p := recover(); p != nil {
			// bbolt panics on some corrupt pages (even in Open, which
			// then leaves its file descriptor open: one per corrupt file
			// met, harmless).
			err = fmt.Errorf("reading the state: %v", p)
		}
		if err != nil && db != nil {
			db.Close()
		}
		if err != nil {
			st, sv = nil, nil
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, nil, ErrStateLocked
		}
		return nil, nil, err
	}
	if os.IsNotExist(statErr) {
		syncDir(filepath.Dir(path))
	}
	if err := db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			return fmt.Errorf("consistency check: %w", e)
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketPorts, bucketProgram, bucketMapLog, bucketSnapshot} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyFormat); v != nil {
			var f int
			if _, err := fmt.Sscan(string(v), &f); err != nil {
				return fmt.Errorf("layout version %q: %w", v, err)
			}
			if f > stateFormat {
				return &formatError{f, stateFormat}
			}
			return nil
		}
		return meta.Put(keyFormat, []byte(fmt.Sprint(stateFormat)))
	})
	if err != nil {
		return nil, nil, err
	}
	sv = &saved{snapshot: map[string]*savedMap{}}
	err = db.View(func(tx *bolt.Tx) error { return sv.read(tx) })
	if err != nil {
		return nil, nil, err
	}
	return &store{db: db, path: path}, sv, nil
}

func (sv *saved) read(tx *bolt.Tx) error {
	byIndex := map[int]savedPort{}
	if err := tx.Bucket(bucketPorts).ForEach(func(k, v []byte) error {
		var p savedPort
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("port %q: %w", k, err)
		}
		var params control.PortAttachParams
		if err := json.Unmarshal(p.Params, &params); err != nil || params.Name != string(k) {
			return fmt.Errorf("port %q: bad parameters %s", k, p.Params)
		}
		if _, dup := byIndex[p.Index]; dup || p.Index < 0 || p.Index > 253 {
			return fmt.Errorf("port %q: index %d taken or out of range", k, p.Index)
		}
		byIndex[p.Index] = p
		return nil
	}); err != nil {
		return err
	}
	for i := 0; i <= 253; i++ {
		if p, ok := byIndex[i]; ok {
			var params control.PortAttachParams
			json.Unmarshal(p.Params, &params)
			sv.ports = append(sv.ports, p)
			sv.names = append(sv.names, params.Name)
		}
	}
	pb := tx.Bucket(bucketProgram)
	if obj := pb.Get(keyObject); obj != nil {
		var p control.ProgLoadParams
		if err := json.Unmarshal(pb.Get(keyParams), &p); err != nil {
			return fmt.Errorf("program parameters: %w", err)
		}
		p.Object = append([]byte(nil), obj...)
		sv.program = &p
	}
	if err := tx.Bucket(bucketMapLog).ForEach(func(k, v []byte) error {
		var c mapChange
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("map change %x: %w", k, err)
		}
		sv.log = append(sv.log, c)
		return nil
	}); err != nil {
		return err
	}
	return tx.Bucket(bucketSnapshot).ForEachBucket(func(name []byte) error {
		b := tx.Bucket(bucketSnapshot).Bucket(name)
		m := &savedMap{}
		if err := json.Unmarshal(b.Get(keySpec), &m.spec); err != nil {
			return fmt.Errorf("snapshot of map %s: %w", name, err)
		}
		if eb := b.Bucket(keyEntries); eb != nil {
			eb.ForEach(func(k, v []byte) error {
				m.entries = append(m.entries, savedEntry{append([]byte(nil), k...), append([]byte(nil), v...)})
				return nil
			})
		}
		sv.snapshot[string(name)] = m
		return nil
	})
}

// syncDir makes a directory entry (a created or renamed file) durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func (s *store) Close() error { return s.db.Close() }

// putPort records an attached port.
func (s *store) putPort(idx int, p control.PortAttachParams) error {
	params, err := json.Marshal(p)
	if err != nil {
		return err
	}
	v, _ := json.Marshal(savedPort{Index: idx, Params: params})
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPorts).Put([]byte(p.Name), v) })
}

// deletePort forgets a detached port.
func (s *store) deletePort(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPorts).Delete([]byte(name)) })
}

// putProgram records the installed program and forgets the changes and
// the snapshot of the maps it does not keep (drop).
func (s *store) putProgram(p control.ProgLoadParams, drop []string) error {
	obj := p.Object
	p.Object = nil
	params, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bucketProgram)
		if err := pb.Put(keyObject, obj); err != nil {
			return err
		}
		if err := pb.Put(keyParams, params); err != nil {
			return err
		}
		return dropMaps(tx, drop)
	})
}

// dropMaps forgets the recorded changes and snapshots of the named maps.
func dropMaps(tx *bolt.Tx, names []string) error {
	if len(names) == 0 {
		return nil
	}
	gone := map[string]bool{}
	for _, n := range names {
		gone[n] = true
	}
	lb := tx.Bucket(bucketMapLog)
	var keys [][]byte
	lb.ForEach(func(k, v []byte) error {
		var c mapChange
		if json.Unmarshal(v, &c) == nil && gone[c.Map] {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range keys {
		if err := lb.Delete(k); err != nil {
			return err
		}
	}
	sb := tx.Bucket(bucketSnapshot)
	for n := range gone {
		if sb.Bucket([]byte(n)) != nil {
			if err := sb.DeleteBucket([]byte(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropMaps is the transaction of the function of the same name.
func (s *store) dropMaps(names []string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return dropMaps(tx, names) })
}

// appendChange records a control-plane map write.
func (s *store) appendChange(c mapChange) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMapLog)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, seq), v)
	})
}

// snapshot replaces the snapshot with the contents of ms and forgets the
// recorded changes of those maps, which it supersedes, in one transaction.
func (s *store) snapshot(ms map[string]maps.Map) (entries int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		entries = 0
		var names []string
		for name := range ms {
			names = append(names, name)
		}
		if err := dropMaps(tx, names); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketSnapshot); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		sb, err := tx.CreateBucket(bucketSnapshot)
		if err != nil {
			return err
		}
		for name, m := range ms {
			b, err := sb.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			spec, _ := json.Marshal(specOf(m))
			if err := b.Put(keySpec, spec); err != nil {
				return err
			}
			eb, err := b.CreateBucket(keyEntries)
			if err != nil {
				return err
			}
			var perr error
			each(m, func(k, v []byte) {
				if perr == nil {
					perr = eb.Put(k, v)
					entries++
				}
			})
			if perr != nil {
				return perr
			}
		}
		return nil
	})
	return entries, err
}

// snapshotted reports whether a map's contents belong in the shutdown
// snapshot: not ring buffers (events, not state), not program arrays
// (restored from the change log by program name), not read-only data
// (it comes from the object).
func snapshotted(name string, m maps.Map) bool {
	switch m.Spec().Type {
	case maps.RingBuf, maps.ProgArray:
		return false
	}
	return !isReadOnlyData(name)
}
