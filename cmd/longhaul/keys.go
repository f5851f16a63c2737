package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/longhaul-dev/longhaul/auth"
)

const keysUsage = `longhaul keys manages the API keys every instance on one Redis accepts (REDIS_URL).

Usage:
  longhaul keys create --name NAME --role client|admin
      make a key and print it, once: it is never shown again. A client key sees its own
      jobs; an admin key sees every job, the dashboard and the metrics.
      Example: KEY=$(longhaul keys create --name ci --role client)
  longhaul keys list
      the keys: id, name, role and when each was made (never the key itself)
  longhaul keys revoke ID
      end the key with this id, at once, on every instance
`

// runKeys runs `longhaul keys ...`.
func runKeys(ctx context.Context, args []string, cfg config, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, keysUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	if cfg.Redis.embedded() {
		return errors.New("longhaul keys needs REDIS_URL: keys live in the Redis that the API instances share")
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("longhaul keys "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	name := fs.String("name", "", "what the key is for, e.g. ci or alice")
	role := fs.String("role", string(auth.RoleClient), "client or admin")
	if err := fs.Parse(rest); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	rdb, closeRedis, err := openRedis(ctx, cfg, modeKeys, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer closeRedis()
	keys := auth.NewKeys(rdb)
	switch cmd {
	case "create":
		r, err := auth.ParseRole(*role)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		key, secret, err := keys.Create(ctx, *name, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "made %s key %s (%q); here it is, shown this once:\n", key.Role, key.ID, key.Name)
		fmt.Fprintln(stdout, secret)
	case "list":
		list, err := keys.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED")
		for _, k := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.CreatedAt.Format(time.RFC3339))
		}
		tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: longhaul keys revoke takes one key id (see longhaul keys list)", errUsage)
		}
		if err := keys.Revoke(ctx, fs.Arg(0)); errors.Is(err, auth.ErrUnknownKey) {
			return fmt.Errorf("no key %q (see longhaul keys list)", fs.Arg(0))
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked key %s\n", fs.Arg(0))
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("%w: unknown command keys %s", errUsage, cmd)
	}
	return nil
}
