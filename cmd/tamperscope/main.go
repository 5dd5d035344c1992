// Command tamperscope fingerprints network censorship from packets.
//
//	tamperscope replay   [flags] FILE...   captures -> flows, findings, datasets
//	tamperscope version
//
// Run "tamperscope help" or "tamperscope COMMAND -h" for details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, documented in docs/cli.md.
const (
	exitOK       = 0
	exitFailure  = 1 // the command could not do its job
	exitUsage    = 2 // bad flags or arguments
	exitPartial  = 3 // done, but some input could not be read (corrupt tail, unreadable file)
	exitSignaled = 130
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"replay", "analyze capture files: flows, findings, Parquet datasets", runReplay},
		{"batch", "re-run the detectors over an archived packets/ dataset: flows, findings, datasets", runBatch},
		{"capture", "capture live on an interface (eBPF, AF_PACKET fallback): flows, findings, datasets", runCapture},
		{"analyze", "consume packets from Kafka in a consumer group: flows, findings, datasets", runAnalyze},
		{"aggregate", "run the cross-address detectors (ip_blocking, throttling) over the window digests of analyze", runAggregate},
		{"report", "render a dataset directory as one self-contained HTML report", runReport},
		{"lab", "run the censor lab: scenarios in network namespaces, captures and ground truth (root)", runLab},
		{"version", "print the version", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "tamperscope", version)
			return nil
		}},
	}
}

func main() {
	os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
}

func mainExit(args []string, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "tamperscope %s: %v\n", c.name, err)
			return exitUsage
		case errors.As(err, new(partialError)):
			fmt.Fprintf(stderr, "tamperscope %s: %v\n", c.name, err)
			return exitPartial
		case ctx.Err() != nil:
			fmt.Fprintf(stderr, "tamperscope %s: interrupted\n", c.name)
			return exitSignaled
		default:
			fmt.Fprintf(stderr, "tamperscope %s: %v\n", c.name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "tamperscope: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "tamperscope %s: passive detection of network censorship from packets\n\nUsage: tamperscope COMMAND [flags] [args]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'tamperscope COMMAND -h' for a command's flags and examples.\n")
}

// usageError marks bad flags or arguments (exit code 2).
type usageError struct{ error }

// partialError marks a run that finished with some input unreadable
// (exit code 3): everything readable was analyzed and written.
type partialError struct{ error }

// newFlagSet returns a flag set that prints examples under its flags.
func newFlagSet(name, synopsis, examples string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tamperscope %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		if examples != "" {
			fmt.Fprintf(stderr, "\nExamples:\n%s", examples)
		}
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}
