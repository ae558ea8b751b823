package main

// Running a command over SSH, as pulumi-command v1.2.1 does in
// provider/pkg/provider/remote/commandOutputs.go (run), connection.go
// (SSHConfig, Dial, dialWithRetry), connection_unix.go (agent socket) and
// proxyConnection.go.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/pkg/v3/resource/provider"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/retry"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"backup321/engine/providers/internal/stub"
)

// logger sends messages to the engine about one resource; without a host
// (unit tests) it drops them.
type logger struct {
	host *provider.HostClient
	urn  resource.URN
}

// log writes to the engine's log; status messages are ephemeral (shown
// while the step runs), which is how the real provider streams output.
func (l logger) log(ctx context.Context, sev diag.Severity, msg string, status bool) {
	if l.host == nil {
		return
	}
	if status {
		_ = l.host.LogStatus(ctx, sev, l.urn, msg)
	} else {
		_ = l.host.Log(ctx, sev, l.urn, msg)
	}
}

// connection is command:remote:Connection with its defaults applied.
type connection struct {
	host, user string
	port       float64
	// Optional fields are nil when not set.
	password, privateKey, privateKeyPassword *string
	agentSocketPath, hostKey                 *string
	dialErrorLimit, perDialTimeout           int
	proxy                                    *connection
}

func parseConnection(v resource.PropertyValue) (*connection, error) {
	v = stub.Plain(v)
	if !v.IsObject() {
		return nil, fmt.Errorf("connection is not an object")
	}
	m := v.ObjectValue()
	str := func(k resource.PropertyKey) *string {
		if e := m[k]; e.IsString() {
			s := e.StringValue()
			return &s
		}
		return nil
	}
	num := func(k resource.PropertyKey, def float64) float64 {
		if e := m[k]; e.IsNumber() {
			return e.NumberValue()
		}
		return def
	}
	c := &connection{
		user: "root", port: num("port", 22),
		password: str("password"), privateKey: str("privateKey"), privateKeyPassword: str("privateKeyPassword"),
		agentSocketPath: str("agentSocketPath"), hostKey: str("hostKey"),
		dialErrorLimit: int(num("dialErrorLimit", 10)), perDialTimeout: int(num("perDialTimeout", 15)),
	}
	if h := str("host"); h != nil {
		c.host = *h
	} else {
		return nil, fmt.Errorf("connection.host is required")
	}
	if u := str("user"); u != nil {
		c.user = *u
	}
	if p, ok := m["proxy"]; ok && stub.Plain(p).IsObject() {
		proxy, err := parseConnection(p)
		if err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		c.proxy = proxy
	}
	return c, nil
}

func (c *connection) endpoint() string {
	return net.JoinHostPort(c.host, fmt.Sprintf("%d", int(c.port)))
}

// sshConfig: a given host key (authorized_keys format) is enforced, otherwise
// any host key is accepted; auth methods are the private key, then the
// password (also for keyboard-interactive), then the agent (agentSocketPath
// or $SSH_AUTH_SOCK).
func (c *connection) sshConfig() (*ssh.ClientConfig, error) {
	config := &ssh.ClientConfig{
		User:            c.user,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), //nolint:gosec // the real provider's behaviour without hostKey
		Timeout:         time.Duration(c.perDialTimeout) * time.Second,
	}
	if c.hostKey != nil {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.hostKey))
		if err != nil {
			return nil, fmt.Errorf("failed to parse host key: %w", err)
		}
		config.HostKeyCallback = ssh.FixedHostKey(key)
		config.HostKeyAlgorithms = []string{key.Type()}
	}
	if c.privateKey != nil {
		var signer ssh.Signer
		var err error
		if c.privateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.privateKey), []byte(*c.privateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.privateKey))
		}
		if err != nil {
			return nil, err
		}
		config.Auth = append(config.Auth, ssh.PublicKeys(signer))
	}
	if c.password != nil {
		pw := *c.password
		config.Auth = append(config.Auth, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	socket := c.agentSocketPath
	if socket == nil {
		if env := os.Getenv("SSH_AUTH_SOCK"); env != "" {
			socket = &env
		}
	}
	if socket != nil {
		conn, err := net.Dial("unix", *socket)
		if err != nil {
			return nil, err
		}
		config.Auth = append(config.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	return config, nil
}

// withRetry calls f until it succeeds or has failed more than limit times
// (limit -1: forever), with the SDK's default backoff, logging each retry.
func withRetry[T any](ctx context.Context, log logger, what string, limit int, f func() (T, error)) (T, error) {
	var zero T
	ok, data, err := retry.Until(ctx, retry.Acceptor{
		Accept: func(try int, _ time.Duration) (bool, any, error) {
			res, err := f()
			if err == nil {
				return true, res, nil
			}
			if dials := try + 1; limit > -1 && dials > limit {
				return true, nil, fmt.Errorf("after %d failed attempts: %w", try, err)
			}
			max := "inf"
			if limit != -1 {
				max = fmt.Sprintf("%d", limit)
			}
			log.log(ctx, diag.Info, fmt.Sprintf("%s %d/%s failed: retrying", what, try+1, max), true)
			return false, nil, nil
		},
	})
	if ok && err == nil {
		return data.(T), nil
	}
	if err == nil {
		err = ctx.Err()
	}
	return zero, err
}

func (c *connection) dial(ctx context.Context, log logger) (*ssh.Client, error) {
	config, err := c.sshConfig()
	if err != nil {
		return nil, err
	}
	if c.proxy == nil {
		return withRetry(ctx, log, "Dial", c.dialErrorLimit, func() (*ssh.Client, error) {
			return ssh.Dial("tcp", c.endpoint(), config)
		})
	}
	// Through a bastion: SSH to the proxy, open a TCP channel from it to the
	// target, and run the SSH handshake over that channel.
	proxyConfig, err := c.proxy.sshConfig()
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	proxyClient, err := withRetry(ctx, log, "Dial proxy", c.proxy.dialErrorLimit, func() (*ssh.Client, error) {
		return ssh.Dial("tcp", c.proxy.endpoint(), proxyConfig)
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	conn, err := withRetry(ctx, log, "Dial from proxy", c.dialErrorLimit, func() (net.Conn, error) {
		return proxyClient.Dial("tcp", c.endpoint())
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	var chans <-chan ssh.NewChannel
	var reqs <-chan *ssh.Request
	sshConn, err := withRetry(ctx, log, "Dial", c.dialErrorLimit, func() (ssh.Conn, error) {
		sc, ch, rq, err := ssh.NewClientConn(conn, c.endpoint(), config)
		chans, reqs = ch, rq
		return sc, err
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return ssh.NewClient(sshConn, chans, reqs), nil
}

// lockedBuffer: stdout and stderr are copied by two goroutines and both go
// into the combined buffer.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const setenvHelp = `Unable to set '%s'. This only works if your SSH server is configured to accept
	these variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the remote host, you could
	prefix the command itself with the variables in the form 'VAR=value command'`

// run runs cmd on the host described by props' connection, with props'
// environment, stdin and logging. prev holds the stdout/stderr of the previous
// create/update, handed to the command as PULUMI_COMMAND_STDOUT/STDERR.
// It returns stdout and stderr with one trailing newline trimmed.
func (p *commandProvider) run(
	ctx context.Context, urn resource.URN, props, prev resource.PropertyMap, cmd string,
) (string, string, error) {
	log := logger{host: p.host, urn: urn}
	conn, err := parseConnection(props["connection"])
	if err != nil {
		return "", "", err
	}
	client, err := conn.dial(ctx, log)
	if err != nil {
		return "", "", err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return "", "", err
	}
	defer session.Close()

	// A refused variable from `environment` fails the run...
	for _, kv := range sortedEnv(props) {
		if err := session.Setenv(kv[0], kv[1]); err != nil {
			log.log(ctx, diag.Error, fmt.Sprintf(setenvHelp, kv[0]), false)
			return "", "", fmt.Errorf("could not set environment variable %q: %w", kv[0], err)
		}
	}
	// ...but the previous outputs are set optimistically: only a warning.
	if add := stub.Plain(props["addPreviousOutputInEnv"]); !add.IsBool() || add.BoolValue() {
		for _, e := range [][2]string{{"PULUMI_COMMAND_STDOUT", "stdout"}, {"PULUMI_COMMAND_STDERR", "stderr"}} {
			val, _ := stringProp(prev, resource.PropertyKey(e[1]))
			if val == "" {
				continue
			}
			if err := session.Setenv(e[0], val); err != nil {
				log.log(ctx, diag.Warning, fmt.Sprintf(setenvHelp, e[0]), false)
			}
		}
	}
	if stdin, _ := stringProp(props, "stdin"); stdin != "" {
		session.Stdin = strings.NewReader(stdin)
	}

	// logging: absent means both; "none" logs nothing. Logged lines come from
	// one pipe, so stdout and stderr lines are interleaved as they arrive.
	logging, _ := stringProp(props, "logging")
	logStdout := logging == "" || logging == "stdout" || logging == "stdoutAndStderr"
	logStderr := logging == "" || logging == "stderr" || logging == "stdoutAndStderr"
	var stdout, stderr bytes.Buffer
	var combined lockedBuffer
	pr, pw := io.Pipe()
	outs, errs := []io.Writer{&stdout, &combined}, []io.Writer{&stderr, &combined}
	if logStdout {
		outs = append(outs, pw)
	}
	if logStderr {
		errs = append(errs, pw)
	}
	session.Stdout, session.Stderr = io.MultiWriter(outs...), io.MultiWriter(errs...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		scanner := bufio.NewScanner(pr)
		for scanner.Scan() {
			log.log(ctx, diag.Info, scanner.Text(), true)
		}
		_, _ = io.Copy(io.Discard, pr) // a line too long for the scanner must not block the command
	}()

	err = session.Run(cmd)
	pw.Close()
	<-done
	if err != nil {
		return "", "", fmt.Errorf("%w: running %q:\n%s", err, cmd, combined.String())
	}
	return strings.TrimSuffix(stdout.String(), "\n"), strings.TrimSuffix(stderr.String(), "\n"), nil
}
