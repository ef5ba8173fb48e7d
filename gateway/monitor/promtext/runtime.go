// The Go runtime and process families, named as client_golang's
// GoCollector and ProcessCollector name them. The process ones come from
// /proc (Linux: the only system the gateway runs on); a family whose source
// cannot be read is left out rather than reported as 0.

package promtext

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"syscall"
)

// WriteGo writes the go_ families: goroutines, threads, build information,
// memory statistics, GC pauses and the GC settings (GOGC, GOMEMLIMIT).
func WriteGo(w *Writer) {
	w.Family("go_goroutines", Gauge, "Number of goroutines that currently exist.")
	w.Sample("go_goroutines", float64(runtime.NumGoroutine()))
	threads, _ := runtime.ThreadCreateProfile(nil)
	w.Family("go_threads", Gauge, "Number of OS threads created.")
	w.Sample("go_threads", float64(threads))
	w.Family("go_info", Gauge, "Information about the Go environment.")
	w.Sample("go_info", 1, "version", runtime.Version())

	// ReadMemStats stops the world for a moment: fine once per scrape.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, m := range []struct {
		name, typ, help string
		v               uint64
	}{
		{"alloc_bytes", Gauge, "Number of bytes allocated in heap and currently in use.", ms.Alloc},
		{"alloc_bytes_total", Counter, "Total number of bytes allocated in heap until now, even if released already.", ms.TotalAlloc},
		{"sys_bytes", Gauge, "Number of bytes obtained from system.", ms.Sys},
		{"mallocs_total", Counter, "Total number of heap objects allocated.", ms.Mallocs},
		{"frees_total", Counter, "Total number of heap objects frees.", ms.Frees},
		{"heap_alloc_bytes", Gauge, "Number of heap bytes allocated and currently in use.", ms.HeapAlloc},
		{"heap_sys_bytes", Gauge, "Number of heap bytes obtained from system.", ms.HeapSys},
		{"heap_idle_bytes", Gauge, "Number of heap bytes waiting to be used.", ms.HeapIdle},
		{"heap_inuse_bytes", Gauge, "Number of heap bytes that are in use.", ms.HeapInuse},
		{"heap_released_bytes", Gauge, "Number of heap bytes released to OS.", ms.HeapReleased},
		{"heap_objects", Gauge, "Number of currently allocated objects.", ms.HeapObjects},
		{"stack_inuse_bytes", Gauge, "Number of bytes obtained from system for stack allocator in non-CGO environments.", ms.StackInuse},
		{"stack_sys_bytes", Gauge, "Number of bytes obtained from system for stack allocator.", ms.StackSys},
		{"next_gc_bytes", Gauge, "Number of heap bytes when next garbage collection will take place.", ms.NextGC},
	} {
		name := "go_memstats_" + m.name
		w.Family(name, m.typ, m.help)
		w.Sample(name, float64(m.v))
	}
	w.Family("go_memstats_last_gc_time_seconds", Gauge, "Number of seconds since 1970 of last garbage collection.")
	w.Sample("go_memstats_last_gc_time_seconds", float64(ms.LastGC)/1e9)
	// client_golang adds pause quantiles; the count and sum are what
	// rate() needs.
	w.Family("go_gc_duration_seconds", Summary, "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.")
	w.Sample("go_gc_duration_seconds_sum", float64(ms.PauseTotalNs)/1e9)
	w.Sample("go_gc_duration_seconds_count", float64(ms.NumGC))

	samples := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}, {Name: "/sched/gomaxprocs:threads"}}
	metrics.Read(samples)
	for i, m := range []struct{ name, help string }{
		{"go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100 (GOGC)."},
		{"go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64 (GOMEMLIMIT)."},
		{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting."},
	} {
		if samples[i].Value.Kind() == metrics.KindUint64 {
			w.Family(m.name, Gauge, m.help)
			w.Sample(m.name, float64(samples[i].Value.Uint64()))
		}
	}
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/self/stat: 100
// on every Linux architecture the gateway is built for.
const clockTicks = 100

// WriteProcess writes the process_ families from /proc/self.
func WriteProcess(w *Writer) {
	if st, err := readStat(); err == nil {
		w.Family("process_cpu_seconds_total", Counter, "Total user and system CPU time spent in seconds.")
		w.Sample("process_cpu_seconds_total", float64(st.utime+st.stime)/clockTicks)
		w.Family("process_virtual_memory_bytes", Gauge, "Virtual memory size in bytes.")
		w.Sample("process_virtual_memory_bytes", float64(st.vsize))
		w.Family("process_resident_memory_bytes", Gauge, "Resident memory size in bytes.")
		w.Sample("process_resident_memory_bytes", float64(st.rss*uint64(os.Getpagesize())))
		if boot, err := bootTime(); err == nil {
			w.Family("process_start_time_seconds", Gauge, "Start time of the process since unix epoch in seconds.")
			w.Sample("process_start_time_seconds", float64(boot)+float64(st.starttime)/clockTicks)
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		w.Family("process_open_fds", Gauge, "Number of open file descriptors.")
		w.Sample("process_open_fds", float64(len(fds)))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		w.Family("process_max_fds", Gauge, "Maximum number of open file descriptors.")
		w.Sample("process_max_fds", float64(lim.Cur))
	}
}

type procStat struct {
	utime, stime, starttime, vsize, rss uint64
}

// readStat parses /proc/self/stat (proc(5)). The second field, the command
// name in parentheses, may hold spaces: the fields are counted from the
// last ')'.
func readStat() (procStat, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errBadStat
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 22 {
		return procStat{}, errBadStat
	}
	var st procStat
	for _, p := range []struct {
		field int
		dst   *uint64
	}{{14, &st.utime}, {15, &st.stime}, {22, &st.starttime}, {23, &st.vsize}, {24, &st.rss}} {
		v, err := strconv.ParseUint(string(f[p.field-3]), 10, 64)
		if err != nil {
			return procStat{}, errBadStat
		}
		*p.dst = v
	}
	return st, nil
}

var errBadStat = &os.PathError{Op: "parse", Path: "/proc/self/stat", Err: syscall.EINVAL}

// bootTime is the btime line of /proc/stat: the boot time in seconds since
// the epoch, which process start times in /proc are relative to.
func bootTime() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, &os.PathError{Op: "parse", Path: "/proc/stat", Err: syscall.ENOENT}
}
