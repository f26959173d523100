# The floor: every piece of state the workload manages, read in one shell on the host
# (bench/run.sh sends it over one `ssh HOST sh -s` per host). It prints one line per item, the
# same on every host the workload converged, whatever the tool; bench/run.sh compares them.
app=benchapp
getent group "$app" | cut -d: -f1,3 | sed 's/:[0-9]*$/:gid/'
getent passwd "$app" | awk -F: '{ print $1 ":" ($3 < 1000 ? "system" : "normal") ":" $6 ":" $7 }'
id -gn "$app"
for p in /opt/$app/config /opt/$app/releases /opt/$app/bin /var/log/$app \
         /opt/$app/config/config.yaml /opt/$app/config/env /opt/$app/bin/$app \
         /etc/systemd/system/$app.service; do
    stat -c '%n %F %a %U:%G' "$p"
done
sha256sum /opt/$app/config/config.yaml /opt/$app/config/env /opt/$app/bin/$app /etc/systemd/system/$app.service
printf '/opt/%s/current -> %s\n' "$app" "$(readlink /opt/$app/current)"
systemctl show -p ActiveState -p UnitFileState "$app.service"
