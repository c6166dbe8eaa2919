//! sensor: an MQTT 3.1.1 client that publishes a temperature reading every INTERVAL
//! seconds with QoS 1 -- it waits for PUBACK and retransmits with DUP set, sends PINGREQ
//! when idle for the keep-alive period, and reconnects with exponential backoff.
//!
//! The reading comes from /sys/class/thermal/thermal_zone0/temp (millidegrees) when
//! that file exists (SENSOR_PATH overrides it), else it is simulated.
//!
//! Environment: MQTT_BROKER (IPv4:port, default 127.0.0.1:1883), MQTT_TOPIC (default
//! sensors/temperature), INTERVAL (seconds, default 10), MQTT_CLIENT_ID (default
//! kilobox-sensor), MQTT_KEEPALIVE (seconds, default 60), MQTT_RETRY (seconds before a
//! PUBLISH is sent again, default 5), MQTT_BACKOFF_MAX (seconds, default 60).
//! SIGTERM/SIGINT: send DISCONNECT and exit 0.
//!
//! Raw Linux system calls only (std.os.linux), no libc, no allocator, no std.fmt:
//! a few kilobytes on every architecture.

const std = @import("std");
const linux = std.os.linux;

pub const panic = std.debug.no_panic;

// -- small helpers -------------------------------------------------------------------
fn failed(rc: usize) bool {
    return @as(isize, @bitCast(rc)) < 0 and @as(isize, @bitCast(rc)) > -4096;
}

fn errnoOf(rc: usize) usize {
    return if (failed(rc)) @as(usize, @bitCast(-@as(isize, @bitCast(rc)))) else 0;
}

fn say(parts: []const []const u8) void {
    var line: [512]u8 = undefined;
    var n = append(&line, 0, "sensor: ");
    for (parts) |p| n = append(&line, n, p);
    n = append(&line, n, "\n");
    _ = linux.write(2, &line, n);
}

fn append(buf: []u8, at: usize, s: []const u8) usize {
    const k = @min(s.len, buf.len - at);
    @memcpy(buf[at .. at + k], s[0..k]);
    return at + k;
}

/// Decimal digits of n into buf; returns the used slice. (u32: no 64-bit division helpers on arm)
fn num(buf: []u8, value: u32) []const u8 {
    var n = value;
    var i: usize = buf.len;
    while (true) {
        i -= 1;
        buf[i] = @intCast('0' + n % 10);
        n /= 10;
        if (n == 0 or i == 0) break;
    }
    return buf[i..];
}

fn parseUint(s: []const u8, max: u64) ?u64 {
    if (s.len == 0) return null;
    var v: u64 = 0;
    for (s) |ch| {
        if (ch < '0' or ch > '9') return null;
        v = v * 10 + (ch - '0');
        if (v > max) return null;
    }
    return v;
}

fn env(name: []const u8, default: []const u8) []const u8 {
    const v = std.posix.getenv(name) orelse return default;
    return if (v.len == 0) default else v;
}

fn nowMs() u64 {
    var ts: linux.timespec = undefined;
    _ = linux.syscall2(if (@hasField(linux.SYS, "clock_gettime")) .clock_gettime else .clock_gettime64, @intFromEnum(linux.CLOCK.MONOTONIC), @intFromPtr(&ts));
    return @as(u64, @intCast(ts.sec)) * 1000 + @as(u64, @intCast(ts.nsec)) / 1_000_000;
}

fn bail(why: []const u8, what: []const u8) noreturn {
    say(&.{ why, what });
    linux.exit_group(2);
}

// -- configuration -----------------------------------------------------------------------
const Config = struct {
    addr: linux.sockaddr.in,
    broker: []const u8,
    topic: []const u8,
    client_id: []const u8,
    interval_s: u32,
    keepalive_s: u16,
    retry_s: u32,
    backoff_max_s: u32,
    sensor_path: []const u8,
};

fn parseIpv4Port(s: []const u8) ?linux.sockaddr.in {
    var parts: [5]u32 = .{ 0, 0, 0, 0, 1883 };
    var idx: usize = 0;
    var start: usize = 0;
    var i: usize = 0;
    while (i <= s.len) : (i += 1) {
        const end = i == s.len or s[i] == '.' or s[i] == ':';
        if (!end) continue;
        if (i < s.len and s[i] == ':' and idx != 3) return null;
        if (i < s.len and s[i] == '.' and idx >= 3) return null;
        const v = parseUint(s[start..i], if (idx == 4) 65535 else 255) orelse return null;
        parts[idx] = @intCast(v);
        idx += 1;
        start = i + 1;
        if (idx > 5) return null;
    }
    if (idx != 4 and idx != 5) return null;
    if (parts[4] == 0) return null;
    const a: [4]u8 = .{ @intCast(parts[0]), @intCast(parts[1]), @intCast(parts[2]), @intCast(parts[3]) };
    return .{ .port = std.mem.nativeToBig(u16, @intCast(parts[4])), .addr = @bitCast(a) };
}

fn loadConfig() Config {
    const broker = env("MQTT_BROKER", "127.0.0.1:1883");
    const addr = parseIpv4Port(broker) orelse bail("MQTT_BROKER must be IPv4[:port] (no DNS here), not ", broker);
    const topic = env("MQTT_TOPIC", "sensors/temperature");
    if (topic.len > 200) bail("MQTT_TOPIC is longer than 200 bytes: ", topic[0..40]);
    for (topic) |ch| if (ch == '+' or ch == '#') bail("MQTT_TOPIC must not contain wildcards: ", topic);
    const id = env("MQTT_CLIENT_ID", "kilobox-sensor");
    if (id.len > 64) bail("MQTT_CLIENT_ID is longer than 64 bytes: ", id[0..40]);
    const interval = parseUint(env("INTERVAL", "10"), 86400) orelse bail("INTERVAL must be 1-86400 seconds, not ", env("INTERVAL", ""));
    const keepalive = parseUint(env("MQTT_KEEPALIVE", "60"), 65535) orelse bail("MQTT_KEEPALIVE must be 0-65535, not ", env("MQTT_KEEPALIVE", ""));
    const retry = parseUint(env("MQTT_RETRY", "5"), 3600) orelse bail("MQTT_RETRY must be 1-3600 seconds, not ", env("MQTT_RETRY", ""));
    const backoff = parseUint(env("MQTT_BACKOFF_MAX", "60"), 3600) orelse bail("MQTT_BACKOFF_MAX must be 1-3600 seconds, not ", env("MQTT_BACKOFF_MAX", ""));
    if (interval == 0 or retry == 0 or backoff == 0) bail("INTERVAL, MQTT_RETRY and MQTT_BACKOFF_MAX must be at least 1", "");
    return .{
        .addr = addr,
        .broker = broker,
        .topic = topic,
        .client_id = id,
        .interval_s = @intCast(interval),
        .keepalive_s = @intCast(keepalive),
        .retry_s = @intCast(retry),
        .backoff_max_s = @intCast(backoff),
        .sensor_path = env("SENSOR_PATH", "/sys/class/thermal/thermal_zone0/temp"),
    };
}

// -- the reading ---------------------------------------------------------------------------
/// Millidegrees Celsius from the sensor file, or null when there is none (or it is unreadable).
fn readSensor(path: []const u8) ?i64 {
    var pz: [256]u8 = undefined;
    if (path.len >= pz.len) return null;
    @memcpy(pz[0..path.len], path);
    pz[path.len] = 0;
    const fd = linux.open(@ptrCast(&pz), .{ .CLOEXEC = true }, 0);
    if (failed(fd)) return null;
    defer _ = linux.close(@intCast(fd));
    var buf: [32]u8 = undefined;
    const n = linux.read(@intCast(fd), &buf, buf.len);
    if (failed(n) or n == 0) return null;
    var s: []const u8 = buf[0..n];
    while (s.len > 0 and (s[s.len - 1] == '\n' or s[s.len - 1] == ' ')) s = s[0 .. s.len - 1];
    const neg = s.len > 0 and s[0] == '-';
    const v = parseUint(if (neg) s[1..] else s, 1_000_000) orelse return null;
    return if (neg) -@as(i64, @intCast(v)) else @intCast(v);
}

/// A plausible room temperature that drifts between 20.000 and 24.000 °C.
fn simulated(seq: u32) i64 {
    const phase: i64 = @intCast(seq & 31);
    return 20000 + 250 * (if (phase < 16) phase else 32 - phase);
}

/// {"id":"...","seq":N,"temp_c":21.250,"src":"thermal"|"sim"}
fn payload(buf: []u8, cfg: *const Config, seq: u32) []const u8 {
    const real = readSensor(cfg.sensor_path);
    const milli = real orelse simulated(seq);
    var t: [24]u8 = undefined;
    var f: [24]u8 = undefined;
    const abs: u32 = @intCast(if (milli < 0) -milli else milli);
    const frac = num(&f, 1000 + abs % 1000); // "1xyz": keeps the leading zeros
    var n: usize = 0;
    n = append(buf, n, "{\"id\":\"");
    n = append(buf, n, cfg.client_id);
    n = append(buf, n, "\",\"seq\":");
    n = append(buf, n, num(&t, seq));
    n = append(buf, n, ",\"temp_c\":");
    if (milli < 0) n = append(buf, n, "-");
    n = append(buf, n, num(&t, abs / 1000));
    n = append(buf, n, ".");
    n = append(buf, n, frac[1..]);
    n = append(buf, n, if (real != null) ",\"src\":\"thermal\"}" else ",\"src\":\"sim\"}");
    return buf[0..n];
}

// -- MQTT packets ------------------------------------------------------------------------------
fn putLen(buf: []u8, at: usize, len: usize) usize {
    var n = len;
    var i = at;
    while (true) {
        var b: u8 = @intCast(n % 128);
        n /= 128;
        if (n > 0) b |= 0x80;
        buf[i] = b;
        i += 1;
        if (n == 0) return i;
    }
}

fn putStr(buf: []u8, at: usize, s: []const u8) usize {
    buf[at] = @intCast(s.len >> 8);
    buf[at + 1] = @intCast(s.len & 0xff);
    return append(buf, at + 2, s);
}

fn connectPacket(buf: []u8, cfg: *const Config) []const u8 {
    var body: [128]u8 = undefined;
    var n = putStr(&body, 0, "MQTT");
    body[n] = 4; // protocol level 3.1.1
    body[n + 1] = 0x02; // clean session
    body[n + 2] = @intCast(cfg.keepalive_s >> 8);
    body[n + 3] = @intCast(cfg.keepalive_s & 0xff);
    n = putStr(&body, n + 4, cfg.client_id);
    buf[0] = 0x10;
    const at = putLen(buf, 1, n);
    return buf[0..append(buf, at, body[0..n])];
}

const Message = struct {
    buf: [512]u8 = undefined,
    len: usize = 0,
    id: u16 = 0,
    seq: u32 = 0,
    sent_at: u64 = 0,
    sends: u32 = 0,
};

fn publishPacket(m: *Message, cfg: *const Config, id: u16, body: []const u8) void {
    var vh: [480]u8 = undefined;
    var n = putStr(&vh, 0, cfg.topic);
    vh[n] = @intCast(id >> 8);
    vh[n + 1] = @intCast(id & 0xff);
    n = append(&vh, n + 2, body);
    m.buf[0] = 0x32; // PUBLISH, QoS 1
    const at = putLen(&m.buf, 1, n);
    m.len = append(&m.buf, at, vh[0..n]);
    m.id = id;
}

// -- the connection ------------------------------------------------------------------------------
const Wait = enum { ready, timeout, signal };

var sigfd: i32 = -1;

/// Wait for `events` on fd (or only for a signal when fd < 0), at most timeout_ms.
fn wait(fd: i32, events: i16, timeout_ms: u64) Wait {
    var fds = [2]linux.pollfd{
        .{ .fd = sigfd, .events = linux.POLL.IN, .revents = 0 },
        .{ .fd = fd, .events = events, .revents = 0 },
    };
    const t: i32 = @intCast(@min(timeout_ms, 3_600_000));
    const rc = linux.poll(&fds, if (fd >= 0) 2 else 1, t);
    if (failed(rc) or rc == 0) return .timeout;
    if (fds[0].revents != 0) return .signal;
    return .ready;
}

fn sendAll(fd: i32, data: []const u8) bool {
    var off: usize = 0;
    while (off < data.len) {
        const rc = linux.sendto(fd, data[off..].ptr, data.len - off, 0x4000, null, 0); // MSG_NOSIGNAL
        if (failed(rc)) {
            if (errnoOf(rc) == @intFromEnum(linux.E.AGAIN) and wait(fd, linux.POLL.OUT, 5000) == .ready) continue;
            return false;
        }
        off += rc;
    }
    return true;
}

const Session = struct {
    cfg: *const Config,
    fd: i32 = -1,
    rx: [512]u8 = undefined,
    rx_len: usize = 0,
    last_sent: u64 = 0,
    ping_sent: u64 = 0, // 0: no PINGREQ outstanding

    fn close(s: *Session) void {
        if (s.fd >= 0) _ = linux.close(s.fd);
        s.fd = -1;
        s.rx_len = 0;
        s.ping_sent = 0;
    }

    fn send(s: *Session, data: []const u8) bool {
        if (!sendAll(s.fd, data)) return false;
        s.last_sent = nowMs();
        return true;
    }

    /// TCP connect (5 s timeout), CONNECT, CONNACK. False on any failure.
    fn open(s: *Session) bool {
        const rc = linux.socket(linux.AF.INET, linux.SOCK.STREAM | linux.SOCK.CLOEXEC | linux.SOCK.NONBLOCK, 0);
        if (failed(rc)) return false;
        s.fd = @intCast(rc);
        const c = linux.connect(s.fd, &s.cfg.addr, @sizeOf(linux.sockaddr.in));
        if (failed(c)) {
            if (errnoOf(c) != @intFromEnum(linux.E.INPROGRESS)) return s.fail("cannot connect to ", s.cfg.broker);
            if (wait(s.fd, linux.POLL.OUT, 5000) != .ready) return s.fail("no answer from ", s.cfg.broker);
            var err: i32 = 0;
            var len: linux.socklen_t = @sizeOf(i32);
            _ = linux.getsockopt(s.fd, linux.SOL.SOCKET, linux.SO.ERROR, @ptrCast(&err), &len);
            if (err != 0) return s.fail("cannot connect to ", s.cfg.broker);
        }
        var pkt: [160]u8 = undefined;
        if (!s.send(connectPacket(&pkt, s.cfg))) return s.fail("connection lost while sending CONNECT to ", s.cfg.broker);
        const deadline = nowMs() + 5000;
        while (true) {
            const now = nowMs();
            if (now >= deadline) return s.fail("no CONNACK from ", s.cfg.broker);
            switch (wait(s.fd, linux.POLL.IN, deadline - now)) {
                .signal => return s.fail("interrupted while connecting to ", s.cfg.broker),
                .timeout => continue,
                .ready => {},
            }
            if (!s.receive()) return s.fail("connection closed before CONNACK by ", s.cfg.broker);
            if (s.rx_len >= 4) {
                if (s.rx[0] != 0x20 or s.rx[1] != 2) return s.fail("not an MQTT broker: ", s.cfg.broker);
                const code = s.rx[3];
                s.consume(4);
                if (code != 0) {
                    var d: [4]u8 = undefined;
                    say(&.{ "broker refused the connection, CONNACK code ", num(&d, code) });
                    s.close();
                    return false;
                }
                return true;
            }
        }
    }

    fn fail(s: *Session, why: []const u8, what: []const u8) bool {
        say(&.{ why, what });
        s.close();
        return false;
    }

    /// Read what is available into rx. False when the connection is gone.
    fn receive(s: *Session) bool {
        if (s.rx_len == s.rx.len) s.rx_len = 0; // an oversized packet we do not care about
        const rc = linux.read(s.fd, s.rx[s.rx_len..].ptr, s.rx.len - s.rx_len);
        if (failed(rc)) return errnoOf(rc) == @intFromEnum(linux.E.AGAIN) or errnoOf(rc) == @intFromEnum(linux.E.INTR);
        if (rc == 0) return false;
        s.rx_len += rc;
        return true;
    }

    fn consume(s: *Session, n: usize) void {
        std.mem.copyForwards(u8, s.rx[0 .. s.rx_len - n], s.rx[n..s.rx_len]);
        s.rx_len -= n;
    }

    /// The next complete packet in rx: (type byte, body) -- or null.
    fn nextPacket(s: *Session, body: *[]const u8, kind: *u8) ?usize {
        if (s.rx_len < 2) return null;
        var len: usize = 0;
        var mult: usize = 1;
        var i: usize = 1;
        while (true) : (i += 1) {
            if (i >= s.rx_len or i > 4) return null;
            len += @as(usize, s.rx[i] & 0x7f) * mult;
            mult *= 128;
            if (s.rx[i] & 0x80 == 0) break;
        }
        const total = i + 1 + len;
        if (total > s.rx.len) {
            s.rx_len = 0; // cannot hold it: drop (we never subscribe, so it is not ours)
            return null;
        }
        if (total > s.rx_len) return null;
        kind.* = s.rx[0];
        body.* = s.rx[i + 1 .. total];
        return total;
    }
};

// -- main loop -------------------------------------------------------------------------------------
const Client = struct {
    s: Session,
    cfg: *const Config,
    msg: Message = .{},
    inflight: bool = false,
    seq: u32 = 0,
    next_id: u16 = 0,
    backoff_s: u32 = 1,
    next_connect: u64 = 0,
    next_publish: u64 = 0,

    /// Close the connection and schedule the next attempt (the backoff doubles up to the cap).
    fn lost(c: *Client, why: []const u8) void {
        var d: [12]u8 = undefined;
        c.s.close();
        say(&.{ why, "; retrying in ", num(&d, c.backoff_s), " s" });
        c.next_connect = nowMs() + @as(u64, c.backoff_s) * 1000;
        c.backoff_s = @min(c.backoff_s * 2, c.cfg.backoff_max_s);
    }

    /// (Re)send the reading in flight; every send after the first carries DUP.
    fn sendMsg(c: *Client) void {
        if (c.msg.sends > 0) c.msg.buf[0] |= 0x08;
        c.msg.sends += 1;
        c.msg.sent_at = nowMs();
        if (!c.s.send(c.msg.buf[0..c.msg.len])) c.lost("connection lost while publishing");
    }

    fn tick(c: *Client) void {
        var d1: [12]u8 = undefined;
        var d2: [12]u8 = undefined;
        var now = nowMs();
        if (c.s.fd < 0 and now >= c.next_connect) {
            if (c.s.open()) {
                say(&.{ "connected to ", c.cfg.broker });
                c.backoff_s = 1;
                if (c.inflight) c.sendMsg(); // at least once: the unacknowledged reading again
            } else {
                c.lost("not connected");
            }
            now = nowMs();
        }
        if (now >= c.next_publish) {
            const iv = @as(u64, c.cfg.interval_s) * 1000;
            c.next_publish += iv;
            if (c.next_publish <= now) c.next_publish = now + iv; // fell behind: no burst
            c.seq +%= 1;
            if (c.inflight) {
                say(&.{ "reading ", num(&d1, c.seq), " skipped: ", num(&d2, c.msg.seq), " is not acknowledged yet" });
            } else {
                c.next_id = if (c.next_id == 65535) 1 else c.next_id + 1;
                var body: [256]u8 = undefined;
                publishPacket(&c.msg, c.cfg, c.next_id, payload(&body, c.cfg, c.seq));
                c.msg.seq = c.seq;
                c.msg.sends = 0;
                c.inflight = true;
                if (c.s.fd >= 0) c.sendMsg();
            }
        }
        if (c.s.fd >= 0 and c.inflight and c.msg.sends > 0 and now >= c.msg.sent_at + @as(u64, c.cfg.retry_s) * 1000) {
            say(&.{ "no PUBACK for reading ", num(&d1, c.msg.seq), ": sending it again (DUP)" });
            c.sendMsg();
        }
        const ka: u64 = @as(u64, c.cfg.keepalive_s) * 1000;
        if (c.s.fd >= 0 and ka > 0) {
            if (c.s.ping_sent != 0 and now >= c.s.ping_sent + ka) {
                c.lost("no PINGRESP");
            } else if (c.s.ping_sent == 0 and now >= c.s.last_sent + ka) {
                if (c.s.send(&[_]u8{ 0xc0, 0 })) c.s.ping_sent = now else c.lost("connection lost while pinging");
            }
        }
    }

    /// Milliseconds until the next thing to do.
    fn sleepMs(c: *Client) u64 {
        var until = c.next_publish;
        if (c.s.fd < 0) {
            until = @min(until, c.next_connect);
        } else {
            if (c.inflight and c.msg.sends > 0) until = @min(until, c.msg.sent_at + @as(u64, c.cfg.retry_s) * 1000);
            const ka: u64 = @as(u64, c.cfg.keepalive_s) * 1000;
            if (ka > 0) until = @min(until, (if (c.s.ping_sent != 0) c.s.ping_sent else c.s.last_sent) + ka);
        }
        const now = nowMs();
        return if (until > now) until - now else 0;
    }

    fn handlePackets(c: *Client) void {
        var d1: [12]u8 = undefined;
        var d2: [12]u8 = undefined;
        var body: []const u8 = &.{};
        var kind: u8 = 0;
        while (c.s.nextPacket(&body, &kind)) |used| {
            switch (kind >> 4) {
                4 => if (body.len >= 2 and c.inflight and (@as(u16, body[0]) << 8 | body[1]) == c.msg.id) { // PUBACK
                    c.inflight = false;
                    say(&.{ "published reading ", num(&d1, c.msg.seq), " (acknowledged after ", num(&d2, c.msg.sends), " send(s))" });
                },
                13 => c.s.ping_sent = 0, // PINGRESP
                else => {},
            }
            c.s.consume(used);
        }
    }
};

pub fn main() u8 {
    const cfg = loadConfig();
    var set = linux.sigemptyset();
    linux.sigaddset(&set, linux.SIG.TERM);
    linux.sigaddset(&set, linux.SIG.INT);
    _ = linux.sigprocmask(linux.SIG.BLOCK, &set, null);
    sigfd = @intCast(linux.signalfd(-1, &set, linux.SFD.CLOEXEC | linux.SFD.NONBLOCK));

    var c = Client{ .s = .{ .cfg = &cfg }, .cfg = &cfg, .next_publish = nowMs() };
    var d: [12]u8 = undefined;
    say(&.{ "publishing to ", cfg.topic, " at ", cfg.broker, " every ", num(&d, cfg.interval_s), " s" });
    while (true) {
        c.tick();
        const r = wait(c.s.fd, linux.POLL.IN, c.sleepMs());
        if (r == .signal) {
            if (c.s.fd >= 0) _ = c.s.send(&[_]u8{ 0xe0, 0 }); // DISCONNECT
            c.s.close();
            say(&.{"stopped"});
            return 0;
        }
        if (r != .ready or c.s.fd < 0) continue;
        if (!c.s.receive()) {
            c.lost("connection closed by the broker");
            continue;
        }
        c.handlePackets();
    }
}
