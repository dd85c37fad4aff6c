/* Calls that act on the machine as a whole, and numbers Linux x86-64 does not implement (tests/test_surface.py
 * test_admin_calls): each call's result and errno. Natively this runs as an unprivileged user (it would reboot,
 * load modules... as root); under hermipy, as whoever runs the suite: the guest never gets these privileges. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static void report(const char *what, long result) {
    printf("%s: %ld", what, result);
    if (result < 0)
        printf(" (errno %d)", errno);
    printf("\n");
}

int main(void) {
    /* LINUX_REBOOT_CMD_CAD_OFF: the mildest command there is */
    report("reboot CAD_OFF", syscall(SYS_reboot, 0xfee1deadL, 672274793L, 0L, 0L));
    report("reboot bad magic", syscall(SYS_reboot, 1L, 2L, 0L, 0L));
    report("kexec_load", syscall(SYS_kexec_load, 0L, 0L, 0L, 0L));
    report("kexec_file_load", syscall(SYS_kexec_file_load, -1L, -1L, 0L, "", 0L));
    report("swapon", syscall(SYS_swapon, "/nonexistent-swap", 0L));
    report("swapoff", syscall(SYS_swapoff, "/nonexistent-swap"));
    report("acct(NULL)", syscall(SYS_acct, 0L));
    report("init_module", syscall(SYS_init_module, 0L, 0L, ""));
    report("finit_module", syscall(SYS_finit_module, -1L, "", 0L));
    report("delete_module", syscall(SYS_delete_module, "no_such_module", 0L));
    report("vhangup", syscall(SYS_vhangup));
    report("iopl(0)", syscall(SYS_iopl, 0L));
    report("iopl(3)", syscall(SYS_iopl, 3L));
    report("iopl(4)", syscall(SYS_iopl, 4L));
    report("iopl(-1)", syscall(SYS_iopl, -1L));
    report("ioperm(0x80, 1, on)", syscall(SYS_ioperm, 0x80L, 1L, 1L));
    report("ioperm(0x80, 1, off)", syscall(SYS_ioperm, 0x80L, 1L, 0L));
    report("ioperm(0, 65536, off)", syscall(SYS_ioperm, 0L, 65536L, 0L));
    report("ioperm(65535, 2, off)", syscall(SYS_ioperm, 65535L, 2L, 0L));
    report("ioperm(-1, 2, on)", syscall(SYS_ioperm, -1L, 2L, 1L));
    report("ioperm(5, 0, on)", syscall(SYS_ioperm, 5L, 0L, 1L));
    static const int not_in_linux[] = {SYS_uselib, SYS__sysctl, SYS_create_module, SYS_get_kernel_syms,
        SYS_query_module, SYS_nfsservctl, SYS_getpmsg, SYS_putpmsg, SYS_afs_syscall, SYS_tuxcall, SYS_security,
        SYS_lookup_dcookie, SYS_epoll_ctl_old, SYS_epoll_wait_old, SYS_vserver};
    for (unsigned i = 0; i < sizeof not_in_linux / sizeof *not_in_linux; i++) {
        char what[32];
        snprintf(what, sizeof what, "syscall %d", not_in_linux[i]);
        report(what, syscall(not_in_linux[i], 0L, 0L, 0L, 0L, 0L, 0L));
    }
    return 0;
}
