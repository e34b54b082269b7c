#!/usr/bin/env bash
# Build the .deb from the static release binary: one command,
#   ./scripts/build-deb.sh            -> target/debian/eghostbuster_<version>_amd64.deb
# Uses dpkg-deb directly (the packaging is a handful of files; no debhelper).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=amd64
cargo build --release --locked
bin=target/x86_64-unknown-linux-gnu/release/eghostbuster

out=target/debian
root=$out/root
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$out"

install -D -m 0755 "$bin" "$root/usr/sbin/eghostbuster"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/sbin/eghostbuster"
install -D -m 0755 packaging/runit/run "$root/etc/sv/eghostbuster/run"
install -D -m 0755 packaging/runit/log/run "$root/etc/sv/eghostbuster/log/run"
for unit in eghostbuster.service eghostbuster-sweep.service eghostbuster-sweep.timer; do
    install -D -m 0644 "packaging/systemd/$unit" "$root/lib/systemd/system/$unit"
done
install -D -m 0644 packaging/default/eghostbuster "$root/etc/default/eghostbuster"
install -D -m 0644 packaging/cron/eghostbuster "$root/etc/cron.d/eghostbuster"

mkdir -p "$root/usr/share/man/man8" \
         "$root/usr/share/bash-completion/completions" \
         "$root/usr/share/zsh/vendor-completions" \
         "$root/usr/share/fish/vendor_completions.d" \
         "$root/usr/share/doc/eghostbuster" \
         "$root/usr/share/lintian/overrides"
# eghostbuster(8) and one page per subcommand, from the CLI definition
"$bin" manpage "$root/usr/share/man/man8" >/dev/null
gzip -9n "$root"/usr/share/man/man8/*.8
chmod 0644 "$root"/usr/share/man/man8/*
"$bin" completions bash > "$root/usr/share/bash-completion/completions/eghostbuster"
"$bin" completions zsh > "$root/usr/share/zsh/vendor-completions/_eghostbuster"
"$bin" completions fish > "$root/usr/share/fish/vendor_completions.d/eghostbuster.fish"
chmod 0644 "$root"/usr/share/*/completions/* "$root"/usr/share/zsh/vendor-completions/* \
           "$root"/usr/share/fish/vendor_completions.d/*

# every component inside the static binary, with its licence
./scripts/gen-copyright.sh > "$root/usr/share/doc/eghostbuster/copyright"
printf 'eghostbuster (%s) unstable; urgency=medium\n\n  * Package of the static release build.\n\n -- eghostbuster developers <dev@eghostbuster.org>  %s\n' \
    "$version" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" \
    | gzip -9n > "$root/usr/share/doc/eghostbuster/changelog.gz"
install -m 0644 packaging/lintian/eghostbuster "$root/usr/share/lintian/overrides/eghostbuster"

for f in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$f" "$root/DEBIAN/$f"
done
cat > "$root/DEBIAN/conffiles" <<'CONFFILES'
/etc/default/eghostbuster
/etc/cron.d/eghostbuster
/etc/sv/eghostbuster/run
/etc/sv/eghostbuster/log/run
CONFFILES
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: eghostbuster
Version: $version
Architecture: $arch
Maintainer: eghostbuster developers <dev@eghostbuster.org>
Installed-Size: $size
Depends: adduser
Suggests: runit
Section: admin
Priority: optional
Description: removes stale lock files and CLOSE_WAIT sockets of dead processes
 eghostbuster is a host agent built on eBPF. It watches lock files taken
 exclusively (*.lock, *.lck) and the exit of the processes that own them,
 and removes a lock within milliseconds of its owner's death, after checking
 that no live process still has it open, locked, or named in it. It also
 destroys TCP sockets left idle in CLOSE_WAIT by applications that never
 close them.
 .
 Ships a runit service, a systemd unit, and a sweep timer (and a cron
 example) for hosts without the daemon; none is enabled on install.
CONTROL
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

deb="$out/eghostbuster_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
