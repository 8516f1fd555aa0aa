/* paging.c - page-table builder for tests that need their own mappings (user mode, NX). */
#include "paging.h"

#include "libc.h"
#include "processor.h"

/* 96 pages = 384 KiB: enough for an identity map of 64 MiB in 4 KiB pages (32 page tables)
 * plus the upper levels and a few extra mappings. */
#define POOL_PAGES 96
static uint64_t pool[POOL_PAGES][512] __attribute__((aligned(4096)));
static unsigned pool_used;

static uint64_t* alloc_table(void)
{
    if (pool_used >= POOL_PAGES)
        return NULL;
    uint64_t* t = pool[pool_used++];
    memset(t, 0, PAGE_SIZE);
    return t;
}

uint64_t* pt_new_root(void) { return alloc_table(); }

/* Walk one level down from table, creating the next table if asked. */
static uint64_t* next_level(uint64_t* table, unsigned index, int create)
{
    uint64_t e = table[index];
    if (e & PTE_P) {
        if (e & PTE_PS)
            return NULL; /* a large page already covers this range */
        return (uint64_t*)(uintptr_t)(e & PTE_ADDR_MASK);
    }
    if (!create)
        return NULL;
    uint64_t* t = alloc_table();
    if (t)
        table[index] = (uint64_t)(uintptr_t)t | PTE_P | PTE_W | PTE_U;
    return t;
}

static uint64_t* walk(uint64_t* pml4, uint64_t va, int create)
{
    uint64_t* t = pml4;
    for (int shift = 39; shift > 12 && t; shift -= 9)
        t = next_level(t, (unsigned)(va >> shift) & 511, create);
    return t ? &t[(va >> 12) & 511] : NULL;
}

int pt_map_4k(uint64_t* pml4, uint64_t va, uint64_t pa, uint64_t flags)
{
    uint64_t* pte = walk(pml4, va, 1);
    if (!pte)
        return -1;
    *pte = (pa & PTE_ADDR_MASK) | flags | PTE_P;
    return 0;
}

int pt_identity_map(uint64_t* pml4, uint64_t start, uint64_t end, uint64_t flags)
{
    for (uint64_t a = start & ~(PAGE_SIZE - 1); a < end; a += PAGE_SIZE)
        if (pt_map_4k(pml4, a, a, flags))
            return -1;
    return 0;
}

uint64_t* pt_leaf(uint64_t* pml4, uint64_t va) { return walk(pml4, va, 0); }

int pt_set_flags(uint64_t* pml4, uint64_t va, uint64_t set, uint64_t clear)
{
    uint64_t* pte = pt_leaf(pml4, va);
    if (!pte)
        return -1;
    *pte = (*pte & ~clear) | set;
    invlpg((const void*)(uintptr_t)va);
    return 0;
}

void enable_nx(void) { wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE); }
