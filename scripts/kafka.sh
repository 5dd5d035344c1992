#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft, broker+controller in one JVM)
# for development and tests. It needs only Java 17 and Maven: the broker's
# jars come from Maven Central (scripts/kafka/pom.xml) and are cached under
# .cache/kafka with its data and logs.
#
#   scripts/kafka.sh fetch    download the jars (once; no-op when cached)
#   scripts/kafka.sh up       fetch, format storage, start, wait until the
#                             broker answers an ApiVersions request (no-op
#                             when already up); prints
#                             export TAMPERSCOPE_KAFKA=127.0.0.1:PORT
#                             so that eval "$(scripts/kafka.sh up)" works
#   scripts/kafka.sh down     stop it and wait for the process to exit
#   scripts/kafka.sh status   exit 0 and print the address when up
#   scripts/kafka.sh config   write the broker's server.properties to the
#                             cache and print it (what up starts with)
#
# TAMPERSCOPE_KAFKA_PORT sets the client port (default 19092); the
# controller listens on the next port. TAMPERSCOPE_KAFKA_CACHE moves the
# cache (default .cache/kafka in the repository).
#
# Secure mode: TAMPERSCOPE_KAFKA_SECURE=DIR, where DIR holds PEM files and
# credentials the caller made:
#   ca.pem          the CA certificate that clients trust
#   broker.pem      the broker's unencrypted PKCS#8 private key followed by
#                   its certificate chain; the certificate must name
#                   127.0.0.1 (IP SAN): the broker checks it too, when it
#                   connects to itself
#   scram-user      one client user's name
#   scram-password  its password (one trailing newline dropped; no , [ ] ")
#   client-ca.pem   optional: the CA (one or more PEM certificates) that
#                   client certificates must chain to
# The broker then serves clients on SASL_SSL://127.0.0.1:PORT only, with
# SCRAM-SHA-256 and SCRAM-SHA-512; the controller stays plaintext on
# loopback. The user's credentials for both mechanisms are written when the
# storage is formatted, so changing them needs a fresh cache; the broker
# talks to itself as a user of its own whose random password stays in the
# cache. "Up" means a TLS handshake on PORT verifies against ca.pem.
# With client-ca.pem the listener also requires a client certificate
# (mutual TLS) that chains to client-ca.pem or ca.pem — the broker presents
# broker.pem's certificate when it connects to itself — and SCRAM stays on:
# a client needs both. The broker's truststore is then ca.pem and
# client-ca.pem in one PEM file in the cache, and the "up" handshake
# presents broker.pem's certificate. Adding or removing client-ca.pem takes
# effect when the broker next starts ("down", then "up").
# The defaults become port 19094 and cache .cache/kafka-secure, so a secure
# broker runs beside the plaintext one; a cache is formatted for one mode
# and refused by the other. Clients connect with
#   --kafka-tls --kafka-ca DIR/ca.pem --kafka-sasl scram-sha-512
#   --kafka-user USER --kafka-password-file DIR/scram-password
# plus --kafka-cert FILE --kafka-key FILE with client-ca.pem.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secure=${TAMPERSCOPE_KAFKA_SECURE:-}
if [[ -n $secure ]]; then
	secure=$(cd "$secure" 2>/dev/null && pwd) || { echo "kafka.sh: TAMPERSCOPE_KAFKA_SECURE=$TAMPERSCOPE_KAFKA_SECURE is not a directory" >&2; exit 1; }
	cache=${TAMPERSCOPE_KAFKA_CACHE:-$root/.cache/kafka-secure}
	port=${TAMPERSCOPE_KAFKA_PORT:-19094}
else
	cache=${TAMPERSCOPE_KAFKA_CACHE:-$root/.cache/kafka}
	port=${TAMPERSCOPE_KAFKA_PORT:-19092}
fi
cport=$((port + 1))
jars=$cache/jars
data=$cache/data
pidfile=$cache/kafka.pid
logfile=$cache/kafka.log
props=$cache/server.properties
log4j=$cache/log4j2.properties
# The inter-broker password: its presence marks a cache formatted for the
# secure mode.
adminpw=$cache/scram-admin

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# ready sends a real ApiVersions v0 request (api key 18, correlation id 7,
# client id "tamperscope") and checks the answer's correlation id and error
# code, so "up" means the broker serves requests, not just that a socket
# is listening.
ready() {
	if [[ -n $secure ]]; then
		tls_ready
		return
	fi
	local reply
	reply=$(timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "\x00\x00\x00\x15\x00\x12\x00\x00\x00\x00\x00\x07\x00\x0btamperscope" >&3
		head -c 10 <&3 | od -An -tx1 | tr -d " \n"
	' _ "$port" 2>/dev/null) || return 1
	# 4-byte size, correlation id 7, error code 0.
	[[ ${reply:8:12} == 000000070000 ]]
}

# tls_ready completes a TLS handshake with the client port and verifies
# the broker's chain against ca.pem: a SASL_SSL listener answers nothing
# in plaintext. Kafka accepts connections only once it serves requests, so
# a handshake means the broker is up. openssl is there wherever Debian's
# Java is (ca-certificates depends on it). A listener that requires client
# certificates gets the broker's own, which it trusts: under TLS 1.3 a
# refused client still completes its side of the handshake.
tls_ready() {
	local client=()
	if [[ -f $secure/client-ca.pem ]]; then
		client=(-cert "$secure/broker.pem" -key "$secure/broker.pem")
	fi
	timeout 3 openssl s_client -connect "127.0.0.1:$port" -CAfile "$secure/ca.pem" \
		"${client[@]}" -verify_return_error -brief </dev/null >/dev/null 2>&1
}

running() {
	[[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

fetch() {
	if [[ -f $jars/.complete ]]; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found: install Maven"
	local t0=$SECONDS
	rm -rf "$jars"
	mkdir -p "$jars"
	log "fetching Kafka jars into $jars"
	# Maven's quiet mode still prints colour resets; show its output only
	# when it fails.
	if ! mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
		-DoutputDirectory="$jars" >"$cache/fetch.log" 2>&1; then
		cat "$cache/fetch.log" >&2
		die "fetch Kafka jars: mvn failed"
	fi
	ls "$jars"/kafka_2.13-*.jar >/dev/null 2>&1 || die "fetch Kafka jars: kafka_2.13 missing"
	touch "$jars/.complete"
	log "fetched $(ls "$jars" | wc -l) jars in $((SECONDS - t0)) s"
}

write_config() {
	mkdir -p "$data"
	cat >"$props" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
	if [[ -n $secure ]]; then
		write_secure_config
	fi
	cat >"$log4j" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = warn
logger.log.name = kafka.log
logger.log.level = warn
logger.storage.name = org.apache.kafka.storage
logger.storage.level = warn
EOF
}

# check_secure_dir fails unless DIR holds what the secure mode needs.
check_secure_dir() {
	local f
	for f in ca.pem broker.pem scram-user scram-password; do
		[[ -s $secure/$f ]] || die "TAMPERSCOPE_KAFKA_SECURE=$secure: $f is missing or empty"
	done
	if [[ -e $secure/client-ca.pem && ! -s $secure/client-ca.pem ]]; then
		die "TAMPERSCOPE_KAFKA_SECURE=$secure: client-ca.pem is empty"
	fi
	command -v openssl >/dev/null || die "openssl not found: the secure mode checks the TLS listener with it"
	local user pw
	user=$(<"$secure/scram-user")
	pw=$(<"$secure/scram-password")
	# Kafka's SCRAM argument is a list [name=..,password=..] without quoting.
	[[ $user =~ ^[A-Za-z0-9._@-]+$ ]] || die "scram-user: use letters, digits and . _ @ - only"
	[[ $user != broker ]] || die "scram-user: \"broker\" is the broker's own user"
	[[ $pw != *[],[\"]* && $pw != *$'\n'* ]] || die "scram-password: , [ ] \" and inner newlines are not allowed"
}

# write_secure_config turns the listener into SASL_SSL. The broker reaches
# its own listener (inter-broker traffic) with SCRAM-SHA-512 as user
# "broker"; each enabled mechanism needs a login module on the listener.
# Kafka ignores the broker-wide ssl.client.auth on SASL_SSL listeners
# (KIP-684): client certificates are required with the listener's prefix.
# A PEM truststore takes every certificate in its file.
write_secure_config() {
	local pw jaas trust=$secure/ca.pem
	chmod 600 "$props"
	pw=$(<"$adminpw")
	jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"$pw\";"
	sed -i -e "s|^listeners=.*|listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport|" \
		-e "s|^advertised.listeners=.*|advertised.listeners=SASL_SSL://127.0.0.1:$port|" \
		-e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT|" \
		-e "s|^inter.broker.listener.name=.*|inter.broker.listener.name=SASL_SSL|" "$props"
	cat >>"$props" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$jaas
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$jaas
ssl.keystore.type=PEM
ssl.keystore.location=$secure/broker.pem
ssl.truststore.type=PEM
EOF
	if [[ -f $secure/client-ca.pem ]]; then
		trust=$cache/truststore.pem
		# ca.pem may lack its final newline.
		{ cat "$secure/ca.pem"; echo; cat "$secure/client-ca.pem"; } >"$trust"
		echo "listener.name.sasl_ssl.ssl.client.auth=required" >>"$props"
	fi
	echo "ssl.truststore.location=$trust" >>"$props"
}

# format_storage formats the data directory once; in the secure mode it
# also writes the SCRAM credentials, through an argument file so that no
# password is ever on a command line.
format_storage() {
	local id
	# A cluster id is 16 random bytes in URL-safe base64 without padding;
	# as with Kafka's own ids, never one that starts with "-", which the
	# format command would take for an option (one time in 64).
	id=-
	while [[ $id == -* ]]; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	done
	if [[ -z $secure ]]; then
		java "${java_opts[@]}" kafka.tools.StorageTool format --ignore-formatted \
			-t "$id" -c "$props" >>"$logfile" 2>&1 || die "format storage: see $logfile"
		return
	fi
	local user pw m out rc=0
	user=$(<"$secure/scram-user")
	pw=$(<"$secure/scram-password")
	# An argument file holds one argument a line.
	(
		umask 077
		for m in SCRAM-SHA-512 SCRAM-SHA-256; do
			printf -- '--add-scram\n%s=[name=%s,password=%s]\n' "$m" "$user" "$pw"
		done >"$cache/scram-args"
		printf -- '--add-scram\nSCRAM-SHA-512=[name=broker,password=%s]\n' "$(<"$adminpw")" >>"$cache/scram-args"
	)
	# The format command prints the credential records: they stay out of
	# the log.
	out=$(java "${java_opts[@]}" kafka.tools.StorageTool format --ignore-formatted \
		-t "$id" -c "$props" @"$cache/scram-args" 2>&1) || rc=$?
	rm -f "$cache/scram-args"
	grep -v -i scram <<<"$out" >>"$logfile" || true
	((rc == 0)) || die "format storage: see $logfile"
}

# check_mode refuses a cache formatted for the other mode: a secure broker
# without its credentials, or a plaintext one on the secure broker's data.
check_mode() {
	[[ -f $data/meta.properties ]] || return 0
	if [[ -n $secure && ! -f $adminpw ]]; then
		die "$cache holds a plaintext broker's data: give the secure broker its own TAMPERSCOPE_KAFKA_CACHE and TAMPERSCOPE_KAFKA_PORT"
	fi
	if [[ -z $secure && -f $adminpw ]]; then
		die "$cache holds a secure broker's data: set TAMPERSCOPE_KAFKA_SECURE, or use another TAMPERSCOPE_KAFKA_CACHE"
	fi
}

# A development broker lives for minutes, and the C2 compiler spends them
# compiling: measured here, about half the broker's CPU over repeated
# 800 k-packet publishes. C1 alone compiles in a fraction of that, which on
# 2 shared cores leaves the CPU to tamperscope and the tests. A broker in
# service, past its warm-up, is better served by the JVM's defaults.
java_opts=(-Xms256m -Xmx1g -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
	-Dlog4j2.configurationFile="$log4j" -cp "$jars/*")

up() {
	if [[ -n $secure ]]; then
		check_secure_dir
	fi
	check_mode
	if running && ready; then
		echo "export TAMPERSCOPE_KAFKA=127.0.0.1:$port"
		return 0
	fi
	running && die "pid $(cat "$pidfile") holds $pidfile but 127.0.0.1:$port does not answer; run $0 down"
	ready && die "127.0.0.1:$port answers but was not started by this script (no live $pidfile)"
	command -v java >/dev/null || die "java not found: install a Java 17 runtime"
	fetch
	local t0=$SECONDS
	if [[ -n $secure && ! -f $data/meta.properties ]]; then
		mkdir -p "$cache"
		chmod 700 "$cache"
		(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$adminpw")
	fi
	write_config
	if [[ ! -f $data/meta.properties ]]; then
		format_storage
	fi
	# setsid: the broker outlives the shell that started it and gets no
	# terminal signals.
	setsid java "${java_opts[@]}" kafka.Kafka "$props" >>"$logfile" 2>&1 </dev/null &
	echo $! >"$pidfile"
	local deadline=$((SECONDS + 90))
	until ready; do
		running || { tail -n 30 "$logfile" >&2; rm -f "$pidfile"; die "broker exited during start; log: $logfile"; }
		((SECONDS < deadline)) || { tail -n 30 "$logfile" >&2; down; die "broker did not answer within 90 s; log: $logfile"; }
		sleep 0.2
	done
	local mode=
	[[ -z $secure ]] || mode="SASL_SSL, SCRAM user $(<"$secure/scram-user"), "
	log "up on 127.0.0.1:$port (${mode}pid $(cat "$pidfile")) in $((SECONDS - t0)) s; log: $logfile"
	echo "export TAMPERSCOPE_KAFKA=127.0.0.1:$port"
}

down() {
	if ! running; then
		rm -f "$pidfile"
		return 0
	fi
	local pid
	pid=$(cat "$pidfile")
	kill -TERM "$pid"
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "pid $pid ignored SIGTERM for 30 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.2
	done
	rm -f "$pidfile"
	log "down"
}

status() {
	if running && ready; then
		echo "export TAMPERSCOPE_KAFKA=127.0.0.1:$port"
		return 0
	fi
	if running; then
		log "pid $(cat "$pidfile") running but 127.0.0.1:$port does not answer"
	else
		log "not running"
	fi
	return 1
}

case ${1:-} in
fetch) fetch ;;
up) up ;;
down) down ;;
status) status ;;
config)
	write_config
	cat "$props"
	;;
*)
	echo "usage: $0 {fetch|up|down|status|config}" >&2
	exit 2
	;;
esac
