/* paging.h - build 4-level page tables with 4 KiB pages (SDM Vol.3A 4.5, "4-Level Paging").
 * Physical == virtual for the tables themselves: they live in the identity-mapped image. */
#pragma once

#include <stdint.h>

#define PAGE_SIZE 4096ull
#define PTE_P (1ull << 0)
#define PTE_W (1ull << 1)
#define PTE_U (1ull << 2)
#define PTE_PWT (1ull << 3)
#define PTE_PCD (1ull << 4)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_G (1ull << 8)
#define PTE_NX (1ull << 63) /* needs EFER.NXE, otherwise a reserved bit (SDM Vol.3A 4.5.4) */
#define PTE_ADDR_MASK 0x000ffffffffff000ull

/* #PF error code bits (SDM Vol.3A 4.7). */
#define PFERR_P (1u << 0)
#define PFERR_W (1u << 1)
#define PFERR_U (1u << 2)
#define PFERR_RSVD (1u << 3)
#define PFERR_I (1u << 4)

/* A new, empty PML4 from the static page pool; NULL when the pool is exhausted. */
uint64_t* pt_new_root(void);
/* Map one 4 KiB page. Intermediate entries are created P|W|U so the leaf alone decides
 * the access rights (rights are the AND over all levels, SDM Vol.3A 4.6). Returns 0, or -1
 * if the pool is exhausted or a 2 MiB/1 GiB leaf is in the way. */
int pt_map_4k(uint64_t* pml4, uint64_t va, uint64_t pa, uint64_t flags);
/* Identity-map [start, end) with 4 KiB pages. */
int pt_identity_map(uint64_t* pml4, uint64_t start, uint64_t end, uint64_t flags);
/* Pointer to the leaf PTE of va, or NULL if some level is not present. */
uint64_t* pt_leaf(uint64_t* pml4, uint64_t va);
/* Change a leaf's flags (keeping its address) and INVLPG it. */
int pt_set_flags(uint64_t* pml4, uint64_t va, uint64_t set, uint64_t clear);
/* Set EFER.NXE so PTE_NX is honoured. */
void enable_nx(void);
