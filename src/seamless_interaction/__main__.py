from seamless_interaction.cli import main

raise SystemExit(main())
