// Command fetchchild snapshots one repository and exits: the "ours" side of
// gitsource's shallow-fetch benchmark, measured as a separate process (as
// git is) so its peak RSS compares with git's. It is built by the benchmark;
// it is not part of expsync.
//
//	fetchchild <url> <cache folder> [read]
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/tree"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "idle" {
		return // start-up cost only: the benchmark's baseline
	}
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: fetchchild <url> <cache folder> [read]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], len(os.Args) > 3 && os.Args[3] == "read"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("FETCHCHILD_MEMSTATS") != "" {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(os.Stderr, "sys %d KiB, heap sys %d KiB, heap peak-ish inuse %d KiB, stacks %d KiB, other %d KiB, gc %d\n",
			m.Sys>>10, m.HeapSys>>10, m.HeapInuse>>10, m.StackSys>>10, (m.OtherSys+m.GCSys+m.MSpanSys+m.MCacheSys+m.BuckHashSys)>>10, m.NumGC)
	}
}

func run(url, cache string, readAll bool) error {
	src, err := gitsource.New(gitsource.Repository{URL: url, URLPolicy: gitsource.URLPolicy{AllowHTTP: true},
		Refs: []gitsource.RefPolicy{{Pattern: "main", Trusted: true}}}, cache)
	if err != nil {
		return err
	}
	sn, err := src.Snapshot(context.Background(), "main", "")
	if err != nil {
		return err
	}
	defer sn.Close()
	if !readAll {
		return nil
	}
	n := 0
	err = sn.Walk("", func(p string, e tree.Entry) error {
		if e.IsDir() {
			return nil
		}
		_, err := sn.ReadFile(p, 0)
		n++
		return err
	})
	fmt.Println(n, "files read")
	return err
}
