package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

func init() {
	commands = append(commands, command{
		name:    "emulator servicebus",
		summary: "run the local Service Bus stand-in (AMQP 1.0, queues, topics and subscriptions)",
		run:     runEmulatorServiceBus,
	})
}

func runEmulatorServiceBus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator servicebus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:5672", "TCP address to listen on")
	config := fs.String("config", "", "Config.json in the official emulator's format (default: queue \"transcode\", topic \"transcode-events\" with subscription \"all\")")
	data := fs.String("data", ".ffpipe/servicebus", "directory for the durable message log")
	inMemory := fs.Bool("in-memory", false, "keep messages in memory only (lost on exit)")
	keyName := fs.String("key-name", servicebus.DefaultKeyName, "shared access key name clients must sign with")
	key := fs.String("key", servicebus.DefaultKey, "shared access key clients must sign with")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	useTLS := fs.Bool("tls", false, "also serve AMQPS (AMQP over TLS) on --tls-listen")
	tlsListen := fs.String("tls-listen", "", "AMQPS address (default: the --listen host, port 5671)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate for AMQPS (default: a self-signed one generated into --data)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*useTLS && (*tlsListen != "" || *tlsCert != "" || *tlsKey != "") {
		return fmt.Errorf("emulator servicebus: --tls-listen, --tls-cert and --tls-key need --tls")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("emulator servicebus: --log-level %q: %w", *level, err)
	}
	if *data == "" {
		return fmt.Errorf("emulator servicebus: --data is empty; use --in-memory for a broker without a disk log")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	opts := servicebus.Options{Addr: *listen, DataDir: *data, KeyName: *keyName, Key: *key, Logger: log}
	if *inMemory {
		opts.DataDir = ""
	}
	if *useTLS {
		opts.TLSAddr, opts.TLSCertFile, opts.TLSKeyFile, opts.TLSDir = *tlsListen, *tlsCert, *tlsKey, *data
		if opts.TLSAddr == "" {
			host, _, err := net.SplitHostPort(*listen)
			if err != nil {
				return fmt.Errorf("emulator servicebus: --listen %q: %w", *listen, err)
			}
			opts.TLSAddr = net.JoinHostPort(host, "5671")
		}
		if opts.TLSCertFile != "" {
			opts.TLSDir = ""
		}
	}
	if *config != "" {
		opts.Config = *config
	}
	s, err := servicebus.New(opts)
	if err != nil {
		return fmt.Errorf("emulator servicebus: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("emulator servicebus: %w", err)
	}
	// The connection string holds the key: it is printed for the user, never
	// logged, and a key other than the well-known emulator key is hidden.
	cs := s.ConnectionString()
	if *key != servicebus.DefaultKey {
		cs = strings.Replace(cs, "SharedAccessKey="+*key, "SharedAccessKey=<your --key>", 1)
	}
	fmt.Fprintf(stdout, "Service Bus emulator on %s\nconnection string: %s\n", s.Addr(), cs)
	if s.TLSAddr() != "" {
		tcs := s.TLSConnectionString()
		if *key != servicebus.DefaultKey {
			tcs = strings.Replace(tcs, "SharedAccessKey="+*key, "SharedAccessKey=<your --key>", 1)
		}
		fmt.Fprintf(stdout, "AMQPS (TLS) on %s\ncertificate (trust it in clients): %s\nTLS connection string: %s\n", s.TLSAddr(), s.CertFile(), tcs)
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := s.Close(); err != nil {
		return fmt.Errorf("emulator servicebus: %w", err)
	}
	return ctx.Err()
}
