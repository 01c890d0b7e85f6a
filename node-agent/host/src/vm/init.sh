#!/bin/busybox sh
# The Zero-OS VM initramfs. Loads the virtio drivers, mounts the root filesystem the node shares
# over virtiofs (tag "rootfs"), hands the VM's configuration from /zos (appended by the node for
# this VM) to the root, and starts the image's /sbin/init with the VM's environment.
B=/bin/busybox
say() { echo "zos-init: $*" > /dev/console; }
fail() { say "$*"; $B sync; $B poweroff -f; }

$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
if $B grep -qw zos.probe /proc/cmdline; then
    say "probe: the kernel reached the initramfs"
    $B poweroff -f
fi
for m in $($B cat /modules/order); do
    $B insmod /modules/$m.ko || say "cannot load module $m"
done
$B mount -t virtiofs rootfs /newroot || fail "cannot mount the root filesystem"
[ -x /newroot/sbin/init ] || [ -L /newroot/sbin/init ] || fail "the image has no /sbin/init"

if [ -f /zos/hostname ]; then
    $B hostname -F /zos/hostname
    $B mkdir -p /newroot/etc && $B cp /zos/hostname /newroot/etc/hostname
fi
if [ -f /zos/authorized_keys ]; then
    $B mkdir -p /newroot/root/.ssh
    $B chmod 700 /newroot/root/.ssh
    $B cp /zos/authorized_keys /newroot/root/.ssh/authorized_keys
    $B chmod 600 /newroot/root/.ssh/authorized_keys
fi
if [ -f /zos/network ]; then
    . /zos/network
    { $B ip link set eth0 up &&
      $B ip addr add "$ZOS_NET_ADDRESS" dev eth0 &&
      $B ip route add default via "$ZOS_NET_GATEWAY" dev eth0; } ||
        say "cannot configure the private network"
fi
# Disks are /dev/vda, /dev/vdb, ... in the order the VM names them; each one's serial
# (/sys/block/vdX/serial) is its workload name.
[ -f /zos/env ] && . /zos/env

$B mkdir -p /newroot/dev /newroot/proc /newroot/sys 2>/dev/null
$B mount --move /dev /newroot/dev
$B umount /proc /sys
say "starting /sbin/init"
exec $B switch_root /newroot /sbin/init
