# The floor: every piece of state the workload manages, read in one shell on the host
# (bench/run.sh sends it over one `ssh HOST sh -s` per host). It prints one line per item, the
# same on every host the workload converged, whatever the tool; bench/run.sh compares them.
# The firewall is read as converge reads it (ufw's files and the loaded ufw-user chains), not
# with ufw's Python CLI; with VERIFY=1 (the equivalence check after each tool's first run, not
# timed) it also prints `ufw status verbose` and which site nginx serves for the vhost's name.
app=benchapp
getent group "$app" | cut -d: -f1,3 | sed 's/:[0-9]*$/:gid/'
getent passwd "$app" | awk -F: '{ print $1 ":" ($3 < 1000 ? "system" : "normal") ":" $6 ":" $7 }'
id -gn "$app"
files="/opt/$app/config/config.yaml /opt/$app/bin/$app /etc/systemd/system/$app.service
       /etc/logrotate.d/$app /etc/nginx/sites-available/$app"
for p in /opt/$app/config /opt/$app/releases /opt/$app/bin /var/log/$app /var/www/letsencrypt \
         /opt/$app/current /etc/nginx/sites-enabled/$app $files; do
    stat -c '%n %F %a %U:%G' "$p"
done
sha256sum $files
printf '/opt/%s/current -> %s\n' "$app" "$(readlink /opt/$app/current)"
printf '/etc/nginx/sites-enabled/%s -> %s\n' "$app" "$(readlink /etc/nginx/sites-enabled/$app)"
systemctl show -p ActiveState -p UnitFileState -p NeedDaemonReload "$app.service"
systemctl show -p ActiveState -p UnitFileState nginx.service
grep -h '^ENABLED=' /etc/ufw/ufw.conf
grep -h -E '^(DEFAULT_INPUT_POLICY|DEFAULT_OUTPUT_POLICY|IPV6)=' /etc/default/ufw
grep -h '^### tuple' /etc/ufw/user.rules /etc/ufw/user6.rules
iptables -S INPUT | head -n 1
iptables -S ufw-user-input
ip6tables -S INPUT | head -n 1
ip6tables -S ufw6-user-input
if [ -n "$VERIFY" ]; then
    ufw status verbose
    # The upstream (sleep) listens nowhere: nginx answers 502 for the vhost's name once it
    # serves the site, Debian's default site's 200 before.
    echo "nginx for the vhost: $(curl -s -o /dev/null -w '%{http_code}' -H 'Host: benchapp.example.com' http://127.0.0.1/)"
fi
