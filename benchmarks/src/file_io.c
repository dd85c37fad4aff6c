/* file_io: write a file of MIB MiB in 4 KiB blocks, fsync-free, then read it back in 4 KiB blocks.
 * usage: file_io PATH [MIB]   (default 4). Prints a checksum of what was read; removes the file. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define BLOCK 4096

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: file_io PATH [MIB]\n");
        return 2;
    }
    long blocks = (argc > 2 ? atol(argv[2]) : 4) * 1024 * 1024 / BLOCK;
    unsigned char buf[BLOCK];
    int fd = open(argv[1], O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0) {
        perror("open for writing");
        return 1;
    }
    for (long b = 0; b < blocks; b++) {
        for (int i = 0; i < BLOCK; i++) buf[i] = (unsigned char)(b * 31 + i);
        if (write(fd, buf, BLOCK) != BLOCK) {
            perror("write");
            return 1;
        }
    }
    close(fd);
    fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror("open for reading");
        return 1;
    }
    uint64_t h = 14695981039346656037ULL;
    long total = 0;
    ssize_t got;
    while ((got = read(fd, buf, BLOCK)) > 0) {
        total += got;
        for (ssize_t i = 0; i < got; i += 64) h = (h ^ buf[i]) * 1099511628211ULL;
    }
    close(fd);
    unlink(argv[1]);
    printf("read %ld bytes, hash %016llx\n", total, (unsigned long long)h);
    return got < 0 || total != blocks * BLOCK;
}
